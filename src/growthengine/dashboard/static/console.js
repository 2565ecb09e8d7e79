// The console's live previews: a form with data-live posts itself (with its CSRF field) to that address as the
// marketer types, and puts the answer (server-rendered HTML) into the element named by data-target.
(function () {
  "use strict";
  function live(form) {
    var url = form.getAttribute("data-live");
    var target = document.getElementById(form.getAttribute("data-target"));
    if (!url || !target) { return; }
    var timer = null, sent = 0;
    function refresh() {
      var mine = ++sent;
      var body = new URLSearchParams(new FormData(form));
      form.classList.add("busy");
      fetch(url, {method: "POST", body: body, credentials: "same-origin",
                  headers: {"Content-Type": "application/x-www-form-urlencoded"}})
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== sent) { return; }  // a newer preview is on its way
          target.innerHTML = html;
          target.setAttribute("data-refreshed", String(mine));
          form.classList.remove("busy");
        })
        .catch(function () { form.classList.remove("busy"); });
    }
    function soon() { clearTimeout(timer); timer = setTimeout(refresh, 600); }
    form.querySelectorAll("textarea, input[type=text], input:not([type])").forEach(function (el) {
      el.addEventListener("input", soon);
    });
    var button = form.querySelector("button[value=preview]");
    if (button) {
      button.addEventListener("click", function (e) { e.preventDefault(); refresh(); });
    }
    refresh();
  }
  function start() { document.querySelectorAll("form[data-live]").forEach(live); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
