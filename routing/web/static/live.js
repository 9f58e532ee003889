"use strict";
// Live data over graphql-transport-ws: one connection carrying the page's subscriptions, its state shown
// in the header (#live), reconnecting by itself with a growing, jittered delay.
window.Live = (function () {
  function show(state, text) {
    const badge = document.getElementById("live");
    if (!badge) return;
    badge.hidden = false;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // subscriptions: [{query, variables, next(data)}]; returns {close()}.
  function connect(subscriptions) {
    let socket = null;
    let attempt = 0;
    let stopped = false;
    function open() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql";
      socket = new WebSocket(url, "graphql-transport-ws");
      show("connecting", attempt ? "reconnecting…" : "connecting…");
      socket.addEventListener("open", function () {
        socket.send(JSON.stringify({ type: "connection_init", payload: {} }));
      });
      socket.addEventListener("message", function (event) {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (message.type === "connection_ack") {
          attempt = 0;
          show("live", "live");
          subscriptions.forEach(function (s, i) {
            const payload = { query: s.query, variables: s.variables || {} };
            socket.send(JSON.stringify({ id: String(i + 1), type: "subscribe", payload: payload }));
          });
        } else if (message.type === "next" && message.payload) {
          const s = subscriptions[Number(message.id) - 1];
          if (s && message.payload.data) s.next(message.payload.data);
        } else if (message.type === "ping") {
          socket.send(JSON.stringify({ type: "pong" }));
        } else if (message.type === "error") {
          show("error", "live updates refused");
        }
      });
      socket.addEventListener("close", function () {
        if (stopped) return;
        attempt += 1;
        show("down", "offline, reconnecting…");
        const delay = Math.min(30000, 500 * Math.pow(2, Math.min(attempt, 6)));
        setTimeout(open, delay * (0.5 + Math.random() / 2));
      });
    }
    open();
    return {
      close: function () {
        stopped = true;
        if (socket) socket.close();
      },
    };
  }

  // Exact decimal text as the server wrote it, without trailing zeros.
  function number(text) {
    if (text === null || text === undefined) return "";
    const s = String(text);
    return s.indexOf(".") >= 0 ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
  }

  function flash(element, direction) {
    element.classList.remove("flash-up", "flash-down");
    void element.offsetWidth; // restart the animation
    element.classList.add(direction < 0 ? "flash-down" : "flash-up");
  }

  return { connect: connect, number: number, flash: flash };
})();
