"use strict";
// The console: copy buttons for secrets shown once, and the cost-by-day chart.
(function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      const text = document.querySelector(button.dataset.copy).textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        button.textContent = "Copied";
      }, function () {
        button.textContent = "Select and copy";
      });
    });
  });
  const element = document.getElementById("usage-chart");
  const days = JSON.parse(document.getElementById("usage-data").textContent);
  if (!element || !window.LightweightCharts) return;
  const chart = LightweightCharts.createChart(element, {
    height: 200, autoSize: true,
    layout: { background: { color: "transparent" } },
    grid: { vertLines: { visible: false } },
    rightPriceScale: { borderVisible: false },
  });
  const series = chart.addSeries(LightweightCharts.HistogramSeries, { color: "#3b5bdb", priceFormat: { type: "price", precision: 4, minMove: 0.0001 } });
  series.setData(days.map(function (d) { return { time: d.day, value: Number(d.cost) }; }));
  chart.timeScale().fitContent();
  window.pricegraphUsage = { series: series };
})();
