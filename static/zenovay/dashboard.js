/* Zenovay dashboard: copy buttons and the state of the live sockets.
   htmx (with its ws extension) does the fetching and swapping; this only adds feedback. */
(function () {
  "use strict";

  // Copy a snippet: the clipboard API where allowed, else select the text for Ctrl+C.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    var label = button.textContent;
    function done(text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = label; }, 2000);
    }
    function select() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      done("Press Ctrl+C");
    }
    if (!navigator.clipboard) return select();
    navigator.clipboard.writeText(source.textContent).then(function () { done("Copied"); }, select);
  });

  // A new website's time zone starts as the browser's (the list suggests the others).
  var zone = document.querySelector("input[data-browser-zone]");
  if (zone && window.Intl) {
    var mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (mine) zone.value = mine;
  }

  function indicator(section) {
    var head = section.closest(".content") || document;
    return section.querySelector("[data-conn]") || head.querySelector("[data-conn]");
  }

  function show(section, state, text) {
    var conn = indicator(section);
    if (!conn) return;
    conn.setAttribute("data-state", state);
    conn.querySelector(".conn-text").textContent = text;
  }

  // The parts of the page that are fetched (periods, charts, the header's badge) follow
  // each push of the live panel within half a second, so the whole page agrees.
  var following = 0;
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    if (following || !event.target.closest("[data-live]")) return;
    following = setTimeout(function () {
      following = 0;
      htmx.trigger(document.body, "zv:pushed");
    }, 500);
  });

  // A click that changes the view (a period, a filter, a comparison) is not undone by a
  // refresh of the period or the charts asked for with the old view: refreshes in flight
  // are aborted, and none starts until the new view has arrived.
  var refreshers = ["zv-period", "zv-charts"];
  var changing = new Set();
  document.addEventListener("htmx:beforeRequest", function (event) {
    var detail = event.detail;
    if (refreshers.indexOf(detail.elt.id) >= 0) {
      if (changing.size) event.preventDefault();
      return;
    }
    if (!detail.target || detail.target.id !== "zv-period") return;
    changing.add(detail.xhr);
    refreshers.forEach(function (id) {
      var refresher = document.getElementById(id);
      if (refresher) htmx.trigger(refresher, "htmx:abort");
    });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    changing.delete(event.detail.xhr);
  });

  document.addEventListener("htmx:wsOpen", function (event) {
    show(event.target, "live", "Live");
  });

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    if (code === 4403) {
      // Signed out elsewhere or the session expired; reloading leads to the sign-in page.
      // Not automatic: a proxy that rewrites Host would otherwise reload forever.
      show(event.target, "offline", "Not live: reload the page to sign in again");
      return;
    }
    if (code === 4404) {
      show(event.target, "offline", "Not live: the website is disabled");
      return;
    }
    show(event.target, "offline", "Reconnecting…");
    // htmx retries by itself after abnormal closures only; a server going away cleanly
    // (a deploy) closes normally, so retry those too, after a jittered pause.
    var socket = event.detail.socketWrapper;
    if ([1006, 1011, 1012, 1013].indexOf(code) < 0 && document.contains(event.target)) {
      setTimeout(function () { socket.reconnect(); }, 2000 + Math.random() * 3000);
    }
  });

  // A number that changed flashes briefly, so the eye catches movement.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var next = event.detail.fragment.firstElementChild;
    var count = next && next.getAttribute("data-count");
    if (count === null) return;
    // The same number again: keep the element, and the pulse it may not have played yet.
    if (count === event.detail.target.getAttribute("data-count")) {
      event.detail.shouldSwap = false;
      return;
    }
    next.classList.add("bump");
  });
  document.addEventListener("animationend", function (event) {
    if (event.animationName === "zv-bump") event.target.classList.remove("bump");
  });
})();
