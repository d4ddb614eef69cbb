// Live pages: with `serve --watch`, the catalogue's events (/v1/events) refresh the page's
// content in place. Without JavaScript the pages work as they are; a reload shows the same.
(function () {
  if (!window.EventSource || !window.fetch) return;
  var kinds = ["task_added", "task_changed", "task_missing", "task_revived", "signature_changed", "problem_raised", "problem_cleared"];
  var events = new EventSource("/v1/events");
  var pending = null;
  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) return;
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (!next || !main) return;
        // Keep what the reader is typing in the search form.
        var focused = document.activeElement && document.activeElement.id;
        main.replaceWith(next);
        var live = document.getElementById("live");
        if (live) live.textContent = "Updated " + new Date().toLocaleTimeString();
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      })
      .catch(function () {});
  }
  kinds.forEach(function (kind) {
    events.addEventListener(kind, function () {
      // Many events of one run make one refresh.
      if (!pending) pending = setTimeout(refresh, 150);
    });
  });
})();
