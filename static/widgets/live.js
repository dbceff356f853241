/*! Zenovay live counter: no cookies, no dependencies. Docs: README "Widgets". */
(function (w, d) {
  "use strict";
  // /e/live's cache TTL: polling faster would only re-read the same answer.
  var TTL = 5000;
  var DARK = "{--bg:#0f172a;--fg:#f1f5f9;--mu:#94a3b8;--bd:#1e293b;--ac:#34d399}";
  // !important on :host wins over the page's rules, even its !important ones.
  var CSS =
    ":host{all:initial!important;display:inline-block!important;vertical-align:middle!important}" +
    ".w{--bg:#fff;--fg:#0f172a;--mu:#64748b;--bd:#e2e8f0;--ac:#059669;display:inline-flex;align-items:center;gap:8px;" +
    "padding:6px 14px 6px 12px;border:1px solid var(--bd);border-radius:99px;background:var(--bg);color:var(--fg);" +
    "white-space:nowrap;font:14px/1.4 system-ui,sans-serif;box-shadow:0 1px 2px #0f172a10}" +
    ".dark" + DARK + "@media (prefers-color-scheme:dark){.auto" + DARK + "}" +
    ".dot{position:relative;flex:none;width:8px;height:8px;border-radius:50%;background:var(--mu)}" +
    "[data-state=live] .dot,.dot::after{background:#10b981}[data-state=gone] .dot{background:#ef4444}" +
    "[data-state=live] .dot::after{content:'';position:absolute;inset:0;border-radius:50%;animation:p 2s ease-out infinite}" +
    "@keyframes p{to{transform:scale(2.8);opacity:0}}[data-state=gone] .count{display:none}" +
    "b{display:inline-block;font-variant-numeric:tabular-nums}.label,.status{color:var(--mu)}" +
    ".status{font-size:12px}.status:empty{display:none}" +
    ".bump{animation:b .7s ease-out}@keyframes b{from{transform:scale(1.35);color:var(--ac)}}" +
    "@media (prefers-reduced-motion:reduce){.bump,.dot::after{animation:none!important}}" +
    ".compact{gap:6px;padding:2px 10px 2px 9px;font-size:12px}.compact .dot{width:6px;height:6px}";

  try {
    var tag = d.currentScript;
    var label = tag.getAttribute("data-label");
    var box = mount(tag, "zenovay-live", CSS);
    el(box, "i", "dot");
    var count = el(box, "span", "count");
    count.setAttribute("aria-live", "polite");
    count.setAttribute("aria-atomic", "true");
    var num = el(count, "b", "", "\u2013");
    count.appendChild(d.createTextNode(" "));
    var words = el(count, "span", "label", label || "visitors online");
    var status = el(box, "span", "status");
    feed(tag, "/ws/live/", "/e/live/", tag.getAttribute("data-code"), TTL, function (data) {
      setNumber(num, data.liveCount);
      if (!label) words.textContent = data.liveCount == 1 ? "visitor online" : "visitors online";
    }, box, status);
  } catch (e) {
    w.console && console.warn("Zenovay:", e);
  }

  //#include _connection.js
})(window, document);
