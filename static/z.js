/*! Zenovay tracker: no cookies, no dependencies. Docs: README "Tracker". */
(function (w, d, nav) {
  "use strict";
  var tag = d.currentScript;
  if (!tag) return;
  var code = tag.getAttribute("data-code");
  var api = (tag.getAttribute("data-api") || new URL(tag.src).origin) + "/e/collect";
  var host = location.hostname;
  var local = /(^|\.)localhost$|^(127(\.\d+){3}|\[::1\]|0\.0\.0\.0)$/.test(host) || location.protocol === "file:";
  // Why this page is not counted ("" when it is), said once in the console.
  var off = !code
    ? "no data-code on the script tag, nothing is sent."
    : local && !tag.hasAttribute("data-allow-localhost")
      ? host
        ? "pages on " + host + " are not counted. To test on this computer, add data-allow-localhost to the script tag and " + host + " to the website's other host names."
        : "pages opened from a file are not counted; serve the page from a local web server."
      : "";
  try {
    if (!off && w.localStorage.getItem("zenovay_ignore") === "true") off = "this browser is ignored (localStorage zenovay_ignore).";
  } catch (e) {}
  var said = 0;
  function say(text, warn) {
    if (said++) return;
    var c = w.console;
    if (c) (warn ? c.warn : c.info).call(c, "Zenovay: " + text);
  }
  if (off) say(off);
  var shown = d.visibilityState === "visible" ? Date.now() : 0;
  var engaged = 0;
  var page = location.href;
  var path = location.pathname;
  var referrer = d.referrer || null; // only the first page of a visit has an outside referrer

  // A page being left sends a beacon (it outlives the page); otherwise fetch, whose answer
  // says when an event is refused (4xx) or ignored (a bot, Do Not Track, an excluded IP).
  function send(type, extra, url, leaving) {
    if (off) return;
    var body = { code: code, type: type, url: url || location.href, referrer: referrer };
    for (var k in extra) body[k] = extra[k];
    var json = JSON.stringify(body);
    try {
      if ((leaving || !w.fetch) && nav.sendBeacon(api, json)) return;
    } catch (e) {}
    if (w.fetch) {
      w.fetch(api, {
        method: "POST",
        body: json,
        keepalive: true,
        credentials: "omit",
        headers: { "Content-Type": "text/plain" },
      }).then(function (r) {
        if (r.status > 499) return;
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (r.status > 399) say("collect answered " + r.status + " " + (j.error || r.statusText) + (j.message ? ": " + j.message : ""), 1);
          else if (j.ignored) say("this page was not counted (" + j.ignored + ").");
        });
      }).catch(function () {});
    }
  }

  // Engaged time: how long the page was visible, sent when it is hidden or left.
  function flush() {
    if (shown) engaged += Date.now() - shown;
    shown = 0;
    if (engaged > 0) send("engagement", { engagedMs: engaged }, page, 1);
    engaged = 0;
  }

  // A new path is a new page; a new query string or hash alone is not.
  function navigated() {
    if (location.pathname === path) return;
    flush();
    if (d.visibilityState === "visible") shown = Date.now();
    page = location.href;
    path = location.pathname;
    referrer = null;
    send("pageview");
  }

  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      navigated();
      return result;
    };
  });
  w.addEventListener("popstate", navigated);
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState === "hidden") flush();
    else shown = Date.now();
  });
  w.addEventListener("pagehide", flush);
  // Back/forward from the browser's page cache is a new view of the page.
  w.addEventListener("pageshow", function (e) {
    if (e.persisted) {
      shown = Date.now();
      send("pageview");
    }
  });

  // zenovay("signup", {plan: "pro"}) sends a custom event; calls queued before load are kept.
  var queued = (w.zenovay && w.zenovay.q) || [];
  w.zenovay = function (name, props) {
    send("event", { name: String(name), props: props || null });
  };
  // A page rendered in advance (prerender) counts only once the visitor opens it.
  if (d.prerendering) {
    d.addEventListener("prerenderingchange", function () { send("pageview"); }, { once: true });
  } else {
    send("pageview");
  }
  for (var i = 0; i < queued.length; i++) w.zenovay.apply(w, queued[i]);
})(window, document, navigator);
