// Draws every element with a data-chart attribute ({"data": [...], "layout": {...}}) with the bundled plotly.js.
(function () {
  "use strict";
  var font = {family: "'Noto Sans Thai', 'Sarabun', 'Loma', 'Garuda', 'Tlwg Typo', system-ui, sans-serif", size: 13};
  function draw(el) {
    var spec;
    try { spec = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    var layout = Object.assign({font: font, margin: {l: 48, r: 16, t: 16, b: 40}, legend: {orientation: "h"},
                                paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"}, spec.layout || {});
    window.Plotly.newPlot(el, spec.data || [], layout, {displayModeBar: false, responsive: true})
      .then(function () { el.setAttribute("data-drawn", "1"); });
  }
  function start() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-chart]").forEach(draw);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
