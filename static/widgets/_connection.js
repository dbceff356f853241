  // --- Shared by live.js and dashboard.js: pasted into both where they say
  // "//#include _connection.js" when served (widgets/views.py), so it is written once.

  function el(parent, name, cls, text) {
    var node = parent.appendChild(d.createElement(name));
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  // A host element right after the tag, with an open shadow root the page's CSS cannot reach.
  function mount(tag, name, css) {
    var host = d.createElement(name);
    var parent = tag.parentNode;
    if (parent && parent != d.head) parent.insertBefore(host, tag.nextSibling);
    else d.body.appendChild(host);
    var root = host.attachShadow({ mode: "open" });
    // A constructed sheet is not inline CSS, so a page whose CSP has no 'unsafe-inline' in
    // style-src still applies it; a <style> only where browsers lack adoptedStyleSheets.
    if (root.adoptedStyleSheets) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } else el(root, "style", "", css);
    var theme = tag.getAttribute("data-theme");
    var box = el(root, "div", "w " + (/^(dark|auto)$/.test(theme) ? theme : "light"));
    if (tag.getAttribute("data-size") == "compact") box.className += " compact";
    box.setAttribute("part", "widget");
    return box;
  }

  function setNumber(node, n) {
    var text = n.toLocaleString("en");
    if (node.textContent == text) return;
    var first = node.textContent == "\u2013";
    node.textContent = text;
    if (first) return;
    node.classList.remove("bump");
    // Reading the layout in between restarts the animation.
    void node.offsetWidth;
    node.classList.add("bump");
  }

  // Data from the WebSocket; while sockets fail, from the JSON endpoint every TTL, until a
  // socket holds again. The box's data-state is connecting, live, stale or gone; when stale
  // (offline, or nothing new for a while) the last numbers stay, with their time.
  function feed(tag, wsPath, pollPath, id, ttl, show, box, status) {
    var origin = new URL(tag.src);
    var wsUrl = origin.protocol.replace("http", "ws") + "//" + origin.host + wsPath + encodeURIComponent(id);
    var pollUrl = origin.origin + pollPath + encodeURIComponent(id);
    var fails = 0, opened = 0, last = 0, gone = !id, stamp, failed, socket, polling, timer;

    function report() {
      var stale = failed || !navigator.onLine || (last && Date.now() - last > Math.max(3 * ttl, 20000));
      var at = new Date(stamp);
      box.setAttribute("data-state", gone ? "gone" : stale ? "stale" : last ? "live" : "connecting");
      status.textContent = gone ? "Unknown widget" : !stale ? "" : isNaN(at) ? "offline" :
        "updated " + at.toTimeString().slice(0, 5);
    }
    function got(data) {
      show(data);
      stamp = data.timestamp;
      last = Date.now();
      failed = false;
      report();
    }
    function open() {
      if (gone) return;
      try {
        socket = new WebSocket(wsUrl);
      } catch (e) {
        // No WebSocket here, or the page's CSP forbids it.
        return poll((polling = true));
      }
      socket.onopen = function () {
        opened = Date.now();
      };
      // A socket the page's CSP forbids fires only "error", never "close": poll meanwhile.
      socket.onerror = function () {
        opened || polling || poll((polling = true));
      };
      socket.onmessage = function (event) {
        polling = false;
        try {
          got(JSON.parse(event.data));
        } catch (e) {}
      };
      socket.onclose = function (event) {
        socket = null;
        // A socket held for a while was fine: count failures from then on.
        fails = opened && Date.now() - opened > 30000 ? 1 : fails + 1;
        opened = 0;
        if (event.code == 4404) gone = true;
        else {
          if (fails > 1 && !polling) poll((polling = true));
          // Exponential, capped, jittered: widgets must not reconnect in step.
          var cap = Math.min(30000, 500 * Math.pow(2, fails));
          setTimeout(open, cap / 2 + (Math.random() * cap) / 2);
        }
        report();
      };
    }
    // Concurrent polls collapse into one: each clears the other's timer.
    function poll() {
      if (!polling || gone) return;
      var wait = ttl;
      fetch(pollUrl, { cache: "no-cache", credentials: "omit" })
        .then(function (response) {
          if (response.status == 404) gone = true;
          else if (response.status == 429) wait = Math.max(ttl, 1000 * response.headers.get("Retry-After") || 0);
          else if (response.ok) return response.json().then(got);
          else throw response.status;
        })
        .catch(function () {
          failed = true;
        })
        .then(function () {
          report();
          clearTimeout(timer);
          timer = setTimeout(poll, wait * (1 + Math.random() / 10));
        });
    }

    // Offline and back online show at once, not on the next 5-second check.
    addEventListener("offline", report);
    addEventListener("online", report);
    // The server pushes every 5 s: a socket quiet for 30 s is dead.
    setInterval(function () {
      if (socket && opened && Date.now() - Math.max(last, opened) > 30000) socket.close();
      report();
    }, 5000);
    open();
    report();
  }
