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
  // The broadcast form: choosing a template chooses its channel (a template is written for one).
  function followTemplate() {
    var template = document.getElementById("bc-template"), channel = document.getElementById("bc-channel");
    if (!template || !channel) { return; }
    template.addEventListener("change", function () {
      var chosen = template.options[template.selectedIndex];
      if (chosen && chosen.getAttribute("data-channel")) { channel.value = chosen.getAttribute("data-channel"); }
    });
  }
  function start() { document.querySelectorAll("form[data-live]").forEach(live); followTemplate(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
