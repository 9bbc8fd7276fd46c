// Live regions of the web consoles: an element with data-live-src is polled every
// data-live-every milliseconds with ?after=<data-live-cursor>; the HTML answered (new
// rows, newest first) goes at its top and the answer's X-Live-Cursor becomes the next
// cursor; at most data-live-keep children are kept. Polling stops when the page is
// hidden and resumes when it is shown; a 401 or 403 (signed out) stops it for good.
// Without this script the page's Refresh link does the same by hand.
"use strict";
(function () {
  function start(region) {
    var every = parseInt(region.dataset.liveEvery || "2000", 10);
    var keep = parseInt(region.dataset.liveKeep || "100", 10);
    var stopped = false;
    var note = document.querySelector(".live-on");
    if (note) { note.hidden = false; }
    function poll() {
      if (stopped) { return; }
      if (document.hidden) { setTimeout(poll, every); return; }
      var src = region.dataset.liveSrc;
      var url = src + (src.indexOf("?") < 0 ? "?" : "&") + "after=" +
        encodeURIComponent(region.dataset.liveCursor || "");
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401 || r.status === 403) {
            stopped = true;
            if (note) { note.textContent = "Signed out: live updates stopped."; }
            return "";
          }
          var cursor = r.headers.get("X-Live-Cursor");
          if (cursor) { region.dataset.liveCursor = cursor; }
          return r.ok ? r.text() : "";
        })
        .then(function (html) {
          if (html && html.trim()) {
            region.insertAdjacentHTML("afterbegin", html);
            while (region.children.length > keep) { region.removeChild(region.lastElementChild); }
            var empty = document.querySelector("[data-live-empty]");
            if (empty) { empty.hidden = true; }
          }
        })
        .catch(function () { /* the next poll tries again */ })
        .then(function () { setTimeout(poll, every); });
    }
    setTimeout(poll, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(start);
  });
})();
