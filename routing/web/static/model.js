"use strict";
// A model page: one candlestick chart per offer (lightweight-charts), the forming candle and the offers
// table moved by price ticks. Intervals with no tick carry the last close forward, as the server's do.
(function () {
  const data = JSON.parse(document.getElementById("model-data").textContent);
  const step = data.step;
  const charts = {};
  const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;

  data.offers.forEach(function (offer) {
    const element = document.querySelector('[data-chart="' + offer.id + '"]');
    if (!element) return;
    const chart = LightweightCharts.createChart(element, {
      height: 220,
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: dark ? "#ddd" : "#333" },
      grid: { vertLines: { visible: false }, horzLines: { color: dark ? "#333" : "#eee" } },
      timeScale: { timeVisible: data.interval === "hour", secondsVisible: false },
      rightPriceScale: { borderVisible: false },
    });
    const series = chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: "#1a9c5b", downColor: "#d64545", borderVisible: false,
      wickUpColor: "#1a9c5b", wickDownColor: "#d64545",
      priceFormat: { type: "price", precision: 4, minMove: 0.0001 },
    });
    series.setData(offer.candles.map(function (c) {
      return { time: c.time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
    }));
    chart.timeScale().fitContent();
    charts[offer.id] = { chart: chart, series: series, offer: offer };
  });

  function move(entry, price, at) {
    const series = entry.series;
    const time = Math.floor(at / step) * step;
    const bars = series.data();
    const last = bars.length ? bars[bars.length - 1] : null;
    if (last && last.time === time) {
      series.update({ time: time, open: last.open, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price });
      return;
    }
    if (last && time < last.time) return; // older than what is drawn
    let open = last ? last.close : price;
    if (last) {
      for (let t = last.time + step; t < time; t += step) series.update({ time: t, open: open, high: open, low: open, close: open });
    }
    series.update({ time: time, open: open, high: Math.max(open, price), low: Math.min(open, price), close: price });
  }

  function onPrice(payload) {
    const t = payload.priceChanged;
    const row = document.querySelector('#offers tr[data-provider="' + CSS.escape(t.provider) + '"][data-variant="' + CSS.escape(t.variant) + '"]');
    if (row) {
      row.querySelector(".input").textContent = Live.number(t.inputPer1m);
      row.querySelector(".output").textContent = Live.number(t.outputPer1m);
      row.querySelector(".status").textContent = t.status.toLowerCase();
      const changed = row.querySelector(".changed");
      changed.textContent = "just now" + (t.changePct !== null ? " " + Live.number(t.changePct) + "%" : "");
      Live.flash(row, t.changePct !== null && Number(t.changePct) < 0 ? -1 : 1);
      const entry = charts[row.dataset.offer];
      if (entry) move(entry, Number(t.blendedPer1m), Date.parse(t.observedAt) / 1000);
    }
  }

  window.pricegraphCharts = charts;
  Live.connect([
    {
      query: "subscription($model: String!) { priceChanged(model: $model) { provider variant inputPer1m outputPer1m blendedPer1m changePct priceKind status observedAt } }",
      variables: { model: data.model },
      next: onPrice,
    },
  ]);
})();
