/*! Zenovay mini dashboard: no cookies, no dependencies. Docs: README "Widgets". */
(function (w, d) {
  "use strict";
  // /e/realtime's cache TTL: polling faster would only re-read the same answer.
  var TTL = 10000;
  var DARK = "{--bg:#0f172a;--fg:#f1f5f9;--mu:#94a3b8;--bd:#1e293b;--ac:#34d399;--t:#1e293b;--bar:#1e3a5f}";
  // !important on :host wins over the page's rules, even its !important ones.
  var CSS =
    ":host{all:initial!important;display:block!important;max-width:360px!important}" +
    ".w{--bg:#fff;--fg:#0f172a;--mu:#64748b;--bd:#e2e8f0;--ac:#059669;--t:#f8fafc;--bar:#e0f2fe;" +
    "padding:12px 14px;border:1px solid var(--bd);border-radius:12px;background:var(--bg);color:var(--fg);" +
    "font:14px/1.4 system-ui,sans-serif}" +
    ".dark" + DARK + "@media (prefers-color-scheme:dark){.auto" + DARK + "}" +
    ".w>*+*{margin-top:10px}.head,li{display:flex;align-items:center;gap:8px}" +
    ".dot{position:relative;flex:none;width:8px;height:8px;border-radius:50%;background:var(--mu)}" +
    "[data-state=live] .dot,.dot::after{background:#10b981}[data-state=gone] .dot{background:#ef4444}" +
    "[data-state=live] .dot::after{content:'';position:absolute;inset:0;border-radius:50%;animation:p 2s ease-out infinite}" +
    "@keyframes p{to{transform:scale(2.8);opacity:0}}[data-state=gone]>:not(.head){display:none}" +
    ".tiles{display:grid;grid-template-columns:1fr 1fr;gap:8px}.tile{padding:8px 12px;border-radius:10px;background:var(--t)}" +
    ".status,.k,.s,h2,.empty{color:var(--mu);font-size:12px;font-weight:400}.status{margin-left:auto}" +
    ".s b{font-weight:600;color:var(--fg)}.s::after{content:' today'}" +
    ".v{font-size:24px;font-weight:700;line-height:1.2}b{display:inline-block;font-variant-numeric:tabular-nums}" +
    "h2{margin:0 0 3px;font-size:11px;font-weight:600;letter-spacing:.06em;text-transform:uppercase}" +
    "ol{margin:0;padding:0;list-style:none}li{height:21px;padding:0 8px;border-radius:5px;font-size:13px;" +
    "background:linear-gradient(90deg,var(--bar) var(--w),#0000 0)}" +
    "span{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".bump{animation:b .7s ease-out}@keyframes b{from{transform:scale(1.35);color:var(--ac)}}" +
    "@media (prefers-reduced-motion:reduce){.bump,.dot::after{animation:none!important}}" +
    ".compact{padding:10px 12px;font-size:13px}.compact>*+*{margin-top:8px}.compact .tile{padding:6px 10px}" +
    ".compact .v{font-size:20px}.compact li{height:19px}";

  try {
    var tag = d.currentScript;
    var box = mount(tag, "zenovay-dashboard", CSS);
    var head = el(box, "div", "head");
    el(head, "i", "dot");
    el(head, "b", "", "Live");
    var status = el(head, "b", "status");
    var tiles = el(box, "div", "tiles");
    tiles.setAttribute("aria-live", "polite");
    var visitors = tile("Live visitors");
    var views = tile("Live pageviews");
    var countries = list("Top countries");
    var pages = list("Top pages");
    feed(tag, "/ws/realtime/", "/e/realtime/", tag.getAttribute("data-website"), TTL, function (data) {
      setNumber(visitors[0], data.visitors.current);
      setNumber(visitors[1], data.visitors.today);
      setNumber(views[0], data.pageViews.current);
      setNumber(views[1], data.pageViews.today);
      fill(countries, data.countries.map(function (c) {
        // "GB" -> the two regional indicator symbols that make its flag emoji, and the code as
        // text: where no emoji font draws flags, the code is what says the country.
        var flag = String.fromCodePoint(127397 + c.code.charCodeAt(0), 127397 + c.code.charCodeAt(1));
        return [flag + " " + c.code + " " + c.name, c.count];
      }), data.visitors.current ? "Location unknown" : "No visitors right now");
      fill(pages, data.topPages.map(function (p) {
        return [p.path, p.visitors];
      }), "No pages viewed right now");
    }, box, status);
  } catch (e) {
    w.console && console.warn("Zenovay:", e);
  }

  function tile(title) {
    var node = el(tiles, "div", "tile");
    el(node, "div", "k", title);
    return [el(el(node, "div", "v"), "b", "", "\u2013"), el(el(node, "div", "s"), "b", "", "\u2013")];
  }

  function list(title) {
    var section = el(box, "section");
    el(section, "h2", "", title);
    return el(section, "ol");
  }

  // Top 5 rows of [text, count], each with a bar as long as its share of the first.
  function fill(ol, rows, empty) {
    ol.textContent = "";
    if (!rows.length) el(ol, "li", "empty", empty);
    rows.slice(0, 5).forEach(function (row) {
      var li = el(ol, "li");
      li.style.setProperty("--w", (100 * row[1]) / rows[0][1] + "%");
      el(li, "span", "", row[0]).title = row[0];
      el(li, "b", "", row[1].toLocaleString("en"));
    });
  }

  //#include _connection.js
})(window, document);
