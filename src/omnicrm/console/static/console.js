// The console's only script besides htmx and ECharts: charts from JSON, and the segment builder's helpers.
"use strict";

function renderCharts(root) {
  root.querySelectorAll("[data-chart]").forEach(function (el) {
    if (el.dataset.started) return;
    el.dataset.started = "1";
    fetch(el.dataset.chart, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        return res.json().then(function (body) {
          if (!res.ok) throw new Error(body.message || res.statusText);
          return body;
        });
      })
      .then(function (option) {
        var chart = window.echarts.init(el, null, { renderer: "canvas" });
        option.animation = false;
        chart.on("finished", function () { el.dataset.rendered = "1"; });
        chart.setOption(option);
        window.addEventListener("resize", function () { chart.resize(); });
      })
      .catch(function (err) {
        el.classList.add("chart-error");
        el.textContent = String(err.message || err);
        el.dataset.rendered = "error";
      });
  });
}

function builderHelpers(root) {
  root.querySelectorAll("button[data-fill]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var target = document.querySelector(btn.dataset.fill);
      target.value = btn.textContent.trim();
      target.dispatchEvent(new Event("input", { bubbles: true }));
      target.focus();
    });
  });
  root.querySelectorAll("button[data-insert]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var target = document.querySelector(btn.dataset.insert);
      var at = target.selectionStart || target.value.length;
      var text = btn.textContent.trim() + " ";
      target.value = target.value.slice(0, at) + text + target.value.slice(at);
      target.dispatchEvent(new Event("input", { bubbles: true }));
      target.focus();
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  renderCharts(document);
  builderHelpers(document);
});
