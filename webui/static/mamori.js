// Mamori web UI: the only script (CSP allows scripts from the box only). No data from the page is ever
// evaluated or written as HTML: charts read numbers from data attributes; confirmations use textContent.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var canvases = document.querySelectorAll("canvas[data-chart]");
  if (canvases.length === 0) { return; }
  var script = document.createElement("script");
  script.src = "/static/vendor/chart-4.6.1.umd.min.js";
  script.onload = function () {
    canvases.forEach(function (canvas) {
      var data;
      try { data = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
      new window.Chart(canvas, {
        type: "bar",
        data: { labels: data.labels, datasets: [{ label: canvas.getAttribute("data-title") || "", data: data.values,
                backgroundColor: "#5b7db1" }] },
        options: { animation: false, responsive: true, plugins: { legend: { display: true } },
                   scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    });
  };
  document.head.appendChild(script);
});
