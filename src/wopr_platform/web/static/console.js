// The console's live parts, fed by the platform's event stream (GET /fleet/events, server-sent events).
// A page says what it wants live with attributes, never with inline script (the console's policy forbids it):
//   data-events="<stream url>"  on one element: the stream to follow while the page is shown;
//   data-rows="<url prefix>"    on a table whose rows have id="b-<bot id>": a changed bot's row is fetched again
//                               from <url prefix>/<bot id>/row, a removed bot's row is dropped, and a new bot's
//                               row is added at the end of a <tbody data-append> (the list's last page);
//   data-refresh="<url>"        on any element: fetched again (and replaced) when an event arrives.
(function () {
  "use strict";
  var KINDS = [
    "created", "started", "stopped", "removed", "healthy", "unhealthy", "recreated", "drift_repaired",
    "orphan_removed", "removal_warning", "update_started", "updated", "update_failed", "backed_up", "restored",
    "suspended", "resumed"
  ];
  var DEBOUNCE_MS = 250;
  var source = null;
  var sourceUrl = null;
  var pending = {};

  function later(key, work) {
    if (pending[key]) { clearTimeout(pending[key]); }
    pending[key] = setTimeout(function () { delete pending[key]; work(); }, DEBOUNCE_MS);
  }

  function onEvent(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (err) { return; }
    var row = data.botId ? document.getElementById("b-" + data.botId) : null;
    var table = row ? row.closest("[data-rows]") : null;
    var end = document.querySelector("[data-rows] tbody[data-append]");
    if (!row && end && data.kind === "created") {
      var rows = end.closest("[data-rows]").getAttribute("data-rows");
      htmx.ajax("GET", rows + "/" + data.botId + "/row", { target: end, swap: "beforeend" });
    }
    if (row && table) {
      if (data.kind === "removed") {
        row.remove();
      } else {
        later("row:" + data.botId, function () {
          var current = document.getElementById("b-" + data.botId);
          if (current) {
            htmx.ajax("GET", table.getAttribute("data-rows") + "/" + data.botId + "/row",
              { target: current, swap: "outerHTML" });
          }
        });
      }
    }
    document.querySelectorAll("[data-refresh]").forEach(function (element) {
      var url = element.getAttribute("data-refresh");
      later("part:" + url, function () {
        var current = document.querySelector('[data-refresh="' + url + '"]');
        if (current) { htmx.ajax("GET", url, { target: current, swap: "outerHTML" }); }
      });
    });
  }

  function follow() {
    var live = document.querySelector("[data-events]");
    var url = live ? live.getAttribute("data-events") : null;
    if (url === sourceUrl) { return; }
    if (source) { source.close(); source = null; }
    sourceUrl = url;
    if (!url) { return; }
    source = new EventSource(url);
    KINDS.forEach(function (kind) { source.addEventListener(kind, onEvent); });
  }

  document.addEventListener("DOMContentLoaded", follow);
  document.addEventListener("htmx:afterSettle", follow);
  window.addEventListener("pagehide", function () {
    if (source) { source.close(); source = null; sourceUrl = null; }
  });
})();
