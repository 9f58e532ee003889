"use strict";
// The price board: filters and sorting in the page, and rows kept current from price ticks. The cheapest
// offer is chosen as the server chooses it (datasources/board.py): live, priced, standard service tier,
// lowest blended price, then the oldest offer.
(function () {
  const offers = JSON.parse(document.getElementById("board-data").textContent);
  const tbody = document.querySelector("#board tbody");
  const rows = {};
  tbody.querySelectorAll("tr").forEach(function (tr) {
    rows[tr.dataset.model] = tr;
  });

  function comparable(o) {
    return o.status === "LIVE" && o.kind === "PRICED" && o.standard;
  }

  function cheapest(list) {
    let best = null;
    list.forEach(function (o) {
      if (!comparable(o)) return;
      if (best === null || Number(o.blended) < Number(best.blended) || (Number(o.blended) === Number(best.blended) && o.id < best.id)) best = o;
    });
    return best;
  }

  function marker(list) {
    if (list.some(function (o) { return o.kind === "PRICED"; })) return "no live price";
    return list.some(function (o) { return o.kind === "FREE"; }) ? "free" : "unpriced";
  }

  function cell(tr, name) {
    return tr.querySelector("td." + name);
  }

  function paint(model, tick) {
    const tr = rows[model];
    const list = offers[model];
    if (!tr || !list) return;
    const before = tr.dataset.price ? Number(tr.dataset.price) : null;
    const best = cheapest(list);
    if (best) {
      cell(tr, "price").textContent = Live.number(best.blended);
      cell(tr, "input").textContent = Live.number(best.input);
      cell(tr, "output").textContent = Live.number(best.output);
      cell(tr, "provider").textContent = best.provider + (best.variant ? " " + best.variant : "");
      tr.dataset.price = Live.number(best.blended);
    } else {
      cell(tr, "price").innerHTML = "";
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = marker(list);
      cell(tr, "price").appendChild(tag);
      ["input", "output", "provider"].forEach(function (n) { cell(tr, n).textContent = ""; });
      tr.dataset.price = "";
    }
    if (tick) {
      const known = tick.changePct !== null && tick.changePct !== undefined;
      const pct = known ? Number(tick.changePct) : 0;
      const move = cell(tr, "move");
      move.innerHTML = "";
      const span = document.createElement("span");
      span.className = pct < 0 ? "down" : pct > 0 ? "up" : "";
      span.textContent = known ? (pct < 0 ? "▼ " : pct > 0 ? "▲ " : "") + Live.number(tick.changePct) + "%" : "new offer";
      const time = document.createElement("time");
      time.dateTime = tick.observedAt;
      time.textContent = "just now";
      move.appendChild(span);
      move.appendChild(document.createTextNode(" "));
      move.appendChild(time);
      tr.dataset.moved = String(Math.floor(Date.parse(tick.observedAt) / 1000));
    }
    const after = tr.dataset.price ? Number(tr.dataset.price) : null;
    if (tick) Live.flash(tr, after !== null && before !== null && after < before ? -1 : tick.changePct !== null && Number(tick.changePct) < 0 ? -1 : 1);
  }

  // A model first priced after the page loaded: a row of its own, named by its slug until the next load.
  function addRow(model) {
    const tr = document.createElement("tr");
    tr.dataset.model = model;
    tr.dataset.family = "";
    tr.dataset.providers = " ";
    tr.dataset.name = model;
    tr.dataset.price = "";
    tr.dataset.moved = "0";
    const link = document.createElement("a");
    link.href = "/models/" + encodeURIComponent(model);
    link.textContent = model;
    const first = document.createElement("td");
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(document.createElement("td"));
    ["num price", "num input", "num output", "provider", "num providers", "move"].forEach(function (name) {
      const td = document.createElement("td");
      td.className = name;
      tr.appendChild(td);
    });
    cell(tr, "providers").textContent = "0";
    tbody.insertBefore(tr, tbody.firstChild);
    rows[model] = tr;
    offers[model] = [];
  }

  function find(model, provider, variant) {
    return (offers[model] || []).find(function (o) { return o.provider === provider && o.variant === variant; });
  }

  let added = 0; // offers that appeared after the page loaded: newer than every other

  function onPrice(data) {
    const t = data.priceChanged;
    if (!offers[t.model]) addRow(t.model);
    let offer = find(t.model, t.provider, t.variant);
    if (!offer) {
      added += 1;
      offer = { id: Number.MAX_SAFE_INTEGER - 1e6 + added, provider: t.provider, variant: t.variant, standard: !t.serviceTier };
      offers[t.model].push(offer);
      const providers = rows[t.model].dataset.providers;
      if (providers.indexOf(" " + t.provider + " ") < 0) {
        rows[t.model].dataset.providers = providers + t.provider + " ";
        cell(rows[t.model], "providers").textContent = String(rows[t.model].dataset.providers.trim().split(/\s+/).length);
      }
    }
    offer.blended = t.blendedPer1m;
    offer.input = t.inputPer1m;
    offer.output = t.outputPer1m;
    offer.kind = t.priceKind;
    offer.status = t.status;
    paint(t.model, t);
    if (sortBy.value !== "name") arrange();
  }

  function onStatus(data) {
    const s = data.offerStatusChanged;
    const offer = find(s.model, s.provider, s.variant);
    if (!offer) return;
    offer.status = s.status;
    paint(s.model, null);
  }

  const search = document.getElementById("search");
  const family = document.getElementById("family");
  const provider = document.getElementById("provider");
  const sortBy = document.getElementById("sort");
  const shown = document.getElementById("shown");

  function filter() {
    const needle = search.value.trim().toLowerCase();
    let count = 0;
    Object.keys(rows).forEach(function (slug) {
      const tr = rows[slug];
      const visible =
        (!needle || tr.dataset.name.indexOf(needle) >= 0) &&
        (!family.value || tr.dataset.family === family.value) &&
        (!provider.value || tr.dataset.providers.indexOf(" " + provider.value + " ") >= 0);
      tr.hidden = !visible;
      if (visible) count += 1;
    });
    shown.textContent = String(count);
  }

  function arrange() {
    const order = sortBy.value;
    const list = Object.keys(rows).map(function (slug) { return rows[slug]; });
    function price(tr) {
      return tr.dataset.price === "" ? null : Number(tr.dataset.price);
    }
    list.sort(function (a, b) {
      if (order === "move") return Number(b.dataset.moved) - Number(a.dataset.moved);
      if (order === "price" || order === "-price") {
        const pa = price(a), pb = price(b);
        if (pa === null || pb === null) return pa === null ? (pb === null ? 0 : 1) : -1; // unpriced last
        return order === "price" ? pa - pb : pb - pa;
      }
      return a.dataset.model < b.dataset.model ? -1 : 1;
    });
    list.forEach(function (tr) { tbody.appendChild(tr); });
  }

  document.getElementById("filters").addEventListener("submit", function (event) { event.preventDefault(); });
  search.addEventListener("input", filter);
  family.addEventListener("change", filter);
  provider.addEventListener("change", filter);
  sortBy.addEventListener("change", arrange);

  window.pricegraphBoard = { offers: offers };
  Live.connect([
    {
      query: "subscription { priceChanged { model provider variant inputPer1m outputPer1m blendedPer1m changePct priceKind serviceTier status observedAt } }",
      next: onPrice,
    },
    { query: "subscription { offerStatusChanged { model provider variant status } }", next: onStatus },
  ]);
})();
