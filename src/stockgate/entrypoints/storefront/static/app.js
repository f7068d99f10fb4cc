// The storefront's behaviour: a guest identity kept in localStorage, the cart (the buyer's
// active reservation) through the public HTTP API, live stock through Socket.IO, and payment
// through Stripe.js. No inline script: the CSP allows only files served by this site.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("storefront-config").textContent);
  const KEYS = { token: "stockgate.token", cart: "stockgate.cart", order: "stockgate.order" };
  // The fake Stripe cannot turn card numbers into payment methods: its test cards by name.
  const TEST_CARDS = {
    "4242424242424242": "pm_card_visa",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000000000000002": "pm_card_chargeCustomerFail",
  };
  const FINAL = ["fulfilled", "fulfillment_failed", "expired", "canceled", "refunded"];

  const $ = (id) => document.getElementById(id);
  let cart = null; // the active reservation, as the API returned it
  let order = null;
  let countdownTimer = null;
  let orderTimer = null;
  let socket = null;
  let stripe = null;
  let card = null;
  let paid = false; // the payment method was sent: wait for the order, do not ask again
  let cardMounted = false;

  // The fake Stripe's stand-in declares a global `class Element`, which hides the DOM's
  // Element from every script on the page (htmx's `instanceof Element` checks then fail and
  // nothing is swapped). Its card element is made now, while that class is needed, and the
  // DOM's Element is put back before htmx starts (it starts after the deferred scripts).
  if (config.stripe_fake && typeof Stripe === "function") {
    stripe = Stripe(config.stripe_publishable_key);
    card = stripe.elements().create("card");
    if (Element !== window.Element) Element = window.Element; // a class binding is writable
  }

  // ------------------------------------------------------------------ messages

  function say(text, kind = "error") {
    const box = $("message");
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = false;
  }

  function clearMessage() {
    $("message").hidden = true;
    $("message").textContent = "";
  }

  function explain(problem) {
    const name = productName(problem.product_id);
    switch (problem.code) {
      case "sold_out":
        return problem.available > 0
          ? `Only ${problem.available} of ${name} left — choose fewer.`
          : `${name} is sold out.`;
      case "limit_exceeded":
        return `Limit reached: at most ${problem.limit} of ${name} per customer (you have ${problem.already}).`;
      case "already_in_cart":
        return `${name} is already in your cart — remove it to change the quantity.`;
      case "reservation_expired":
        return "Your hold expired and the items went back on sale.";
      case "reservation_in_checkout":
        return "Checkout has started: pay, or wait for the hold to end, to change the cart.";
      case "rate_limited":
        return `Too many requests — try again in ${problem.retry_after} s.`;
      case "payments_unconfigured":
        return "Payments are not set up on this shop yet.";
      case "unavailable":
      case "payments_unavailable":
        return "The shop is busy or briefly unavailable — nothing was taken. Please retry.";
      default:
        return problem.detail || "Something went wrong.";
    }
  }

  function productName(productId) {
    const item = document.querySelector(`.product[data-product-id="${productId}"]`);
    return item ? item.dataset.name : `product ${productId}`;
  }

  // ------------------------------------------------------------------ the API

  class Problem extends Error {
    constructor(status, body) {
      super(body.detail || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function token() {
    let value = localStorage.getItem(KEYS.token);
    if (!value) {
      const created = await call("POST", "/api/v1/customers", undefined, false);
      value = created.token;
      localStorage.setItem(KEYS.token, value);
    }
    return value;
  }

  async function call(method, path, body, authorized = true) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (authorized) headers.Authorization = `Bearer ${await token()}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new Problem(0, { code: "unavailable", detail: "The shop cannot be reached." });
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401 && authorized) {
      // The token expired or the shop's key changed: a new guest identity (old carts are gone).
      localStorage.removeItem(KEYS.token);
      localStorage.removeItem(KEYS.cart);
      return call(method, path, body, authorized);
    }
    if (!response.ok) throw new Problem(response.status, answer);
    return answer;
  }

  // ------------------------------------------------------------------ the cart

  async function addToCart(productId, quantity) {
    clearMessage();
    const items = [{ product_id: productId, quantity }];
    try {
      if (cart) {
        try {
          changed(await call("POST", `/api/v1/reservations/${cart.id}/items`, { items }));
          return;
        } catch (error) {
          const code = error.body && error.body.code;
          if (!["reservation_expired", "reservation_not_active", "reservation_not_found"].includes(code)) {
            throw error;
          }
          forgetCart(); // it ended meanwhile: this item starts a new cart
        }
      }
      changed(await call("POST", "/api/v1/reservations", { items }));
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      say(explain(error.body));
    }
  }

  function changed(reservation) {
    showCart(reservation);
    // The live feed reports our own changes too; without it, fetch the numbers now.
    if ($("connection").dataset.state !== "live") refreshStock();
  }

  async function removeLine(productId) {
    clearMessage();
    try {
      changed(await call("DELETE", `/api/v1/reservations/${cart.id}/items/${productId}`));
    } catch (error) {
      await handleCartError(error);
    }
  }

  async function releaseAll() {
    clearMessage();
    try {
      await call("DELETE", `/api/v1/reservations/${cart.id}`);
      localStorage.removeItem(KEYS.cart);
      changed(null);
      say("Released: the items are back on sale.", "info");
    } catch (error) {
      await handleCartError(error);
    }
  }

  async function handleCartError(error) {
    if (!(error instanceof Problem)) throw error;
    say(explain(error.body));
    await loadCart();
  }

  async function loadCart() {
    const id = localStorage.getItem(KEYS.cart);
    if (!id) return showCart(null);
    try {
      showCart(await call("GET", `/api/v1/reservations/${id}`));
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      if (error.status === 404) return forgetCart();
      say(explain(error.body));
    }
  }

  function forgetCart() {
    localStorage.removeItem(KEYS.cart);
    showCart(null);
  }

  function showCart(reservation) {
    if (reservation && reservation.status !== "active") {
      if (reservation.status === "expired") say(explain({ code: "reservation_expired" }));
      reservation = null;
    }
    cart = reservation;
    if (cart) localStorage.setItem(KEYS.cart, cart.id);
    else localStorage.removeItem(KEYS.cart);
    $("cart-empty").hidden = Boolean(cart);
    $("cart-body").hidden = !cart;
    const list = $("cart-lines");
    list.replaceChildren();
    let total = 0;
    let currency = "";
    for (const item of cart ? cart.items : []) {
      const product = document.querySelector(`.product[data-product-id="${item.product_id}"]`);
      const price = product ? Number(product.dataset.priceCents) : 0;
      currency = product ? product.dataset.currency.toUpperCase() : currency;
      total += price * item.quantity;
      const line = document.createElement("li");
      line.dataset.productId = item.product_id;
      const label = document.createElement("span");
      label.textContent = `${item.quantity} × ${productName(item.product_id)}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${productName(item.product_id)}`);
      remove.addEventListener("click", () => removeLine(item.product_id));
      line.append(label, remove);
      list.append(line);
    }
    $("cart-total").textContent = `${(total / 100).toFixed(2)} ${currency}`;
    tick();
    clearInterval(countdownTimer);
    if (cart) countdownTimer = setInterval(tick, 1000);
    if (!cart && !order) $("payment").hidden = true;
  }

  function tick() {
    if (!cart) return;
    const left = Math.max(0, Math.floor((Date.parse(cart.expires_at) - Date.now()) / 1000));
    const minutes = Math.floor(left / 60);
    $("countdown").textContent = `${minutes}:${String(left % 60).padStart(2, "0")}`;
    if (left <= 0) {
      clearInterval(countdownTimer);
      setTimeout(expireOnScreen, 500); // the expiry worker ends it within about a second
    }
  }

  async function expireOnScreen() {
    if (!cart) return;
    await loadCart();
    if (cart && Date.parse(cart.expires_at) <= Date.now()) {
      // The server has not ended it yet: it cannot be bought or changed any more anyway.
      say(explain({ code: "reservation_expired" }));
      forgetCart();
    }
    if (!order) $("payment").hidden = true;
  }

  // ------------------------------------------------------------------ checkout and payment

  async function checkout() {
    clearMessage();
    try {
      const started = await call("POST", `/api/v1/reservations/${cart.id}/checkout`);
      order = { id: started.order_id, status: started.status, client_secret: started.client_secret };
      await loadCart(); // checkout holds the reservation longer while the payment is in flight
      localStorage.setItem(KEYS.order, order.id);
      $("payment-amount").textContent = `${(started.amount_cents / 100).toFixed(2)} ${started.currency.toUpperCase()}`;
      showPayment();
    } catch (error) {
      await handleCartError(error);
    }
  }

  function showPayment() {
    $("payment").hidden = false;
    if (!config.payments || typeof Stripe !== "function") {
      say(explain({ code: "payments_unconfigured" }));
      return;
    }
    if (!stripe) {
      stripe = Stripe(config.stripe_publishable_key);
      card = stripe.elements().create("card");
    }
    if (!cardMounted) {
      card.mount("#card-element");
      cardMounted = true;
      labelCardInputs();
    }
    const first = document.querySelector("#card-element input");
    if (first) first.focus();
  }

  function labelCardInputs() {
    // The fake's card element is plain inputs named only by placeholders: name them.
    for (const input of document.querySelectorAll("#card-element input")) {
      input.setAttribute("aria-label", input.getAttribute("placeholder").replace("_", " "));
      input.setAttribute("autocomplete", "off");
    }
  }

  async function paymentMethod() {
    if (config.stripe_fake) {
      const number = ((card.value && card.value.card.number) || "").replace(/\D/g, "");
      const method = TEST_CARDS[number];
      if (!method) throw new Problem(0, { code: "card", detail: "Use a test card: 4242 4242 4242 4242, or 4000 0000 0000 0341 to see a decline." });
      return method;
    }
    const created = await stripe.createPaymentMethod({ type: "card", card });
    if (created.error) throw new Problem(0, { code: "card", detail: created.error.message });
    return created.paymentMethod.id;
  }

  async function pay(event) {
    event.preventDefault();
    clearMessage();
    $("pay").disabled = true;
    try {
      const method = await paymentMethod();
      const payment = await call("POST", `/api/v1/orders/${order.id}/payment-method`, { payment_method: method });
      if (payment.payment_status === "requires_action" && !config.stripe_fake) {
        // 3-D Secure: Stripe.js shows the bank's step, then the payment goes on.
        const confirmed = await stripe.confirmCardPayment(order.client_secret);
        if (confirmed.error) throw new Problem(402, { code: "payment_declined", detail: confirmed.error.message });
      } else if (payment.payment_status === "requires_payment_method") {
        throw new Problem(402, { code: "payment_declined", detail: "the card was not accepted" });
      }
      paid = true;
      $("payment").hidden = true;
      followOrder();
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      const body = error.body || {};
      const declined = error.status === 402 || /declin/i.test(`${body.code} ${body.detail}`);
      say(declined ? "Your card was declined. Your items are still held — try another card." : explain(body));
    } finally {
      $("pay").disabled = false;
    }
  }

  function followOrder() {
    $("order").hidden = false;
    clearInterval(orderTimer);
    const poll = async () => {
      try {
        const current = await call("GET", `/api/v1/orders/${order.id}`);
        showOrder(current);
        if (FINAL.includes(current.status)) clearInterval(orderTimer);
      } catch (error) {
        if (!(error instanceof Problem)) throw error;
        if (error.status === 404) return endOrder();
      }
    };
    poll();
    orderTimer = setInterval(poll, 1000);
  }

  const ORDER_TEXT = {
    payment_pending: "Waiting for the payment to be confirmed…",
    paid: "Paid — preparing your order…",
    fulfilled: "Done! Your order is fulfilled.",
    fulfillment_failed: "Paid, but we could not fulfil it yet — our team has been told.",
    expired: "The hold ended before the payment arrived; nothing was charged.",
    canceled: "The order was canceled.",
    refunded: "The order was refunded.",
  };

  function showOrder(current) {
    order = current;
    $("order-status").textContent = current.status.replace("_", " ");
    $("order-detail").textContent = ORDER_TEXT[current.status] || "";
    if (current.status === "payment_pending" && !paid && cart && $("payment").hidden) {
      // Back after a reload in the middle of checkout: ask for the card again.
      $("payment-amount").textContent = `${(current.amount_cents / 100).toFixed(2)} ${String(current.currency).toUpperCase()}`;
      showPayment();
    }
    if (current.status !== "payment_pending") {
      forgetCart(); // paid (or ended): the reservation is no longer a cart
      $("payment").hidden = true;
    }
    $("order-done").hidden = !FINAL.includes(current.status);
  }

  function endOrder() {
    clearInterval(orderTimer);
    order = null;
    paid = false;
    localStorage.removeItem(KEYS.order);
    $("order").hidden = true;
    $("payment").hidden = true;
  }

  // ------------------------------------------------------------------ live stock

  function watched() {
    return [...document.querySelectorAll(".product")].map((p) => Number(p.dataset.productId));
  }

  function showStock(productId, available) {
    const product = document.querySelector(`.product[data-product-id="${productId}"]`);
    if (!product) return;
    const count = product.querySelector(".available");
    count.textContent = String(available);
    count.dataset.available = String(available);
    const button = product.querySelector("form.add button");
    button.disabled = available <= 0;
    button.textContent = available <= 0 ? "Sold out" : "Add to cart";
  }

  let pollTimer = null;

  async function refreshStock() {
    // Numbers only, in place: swapping the catalog would lose a quantity being typed.
    let products;
    try {
      products = await call("GET", "/api/v1/products", undefined, false);
    } catch (error) {
      if (error instanceof Problem) return; // still unreachable: the next round tries again
      throw error;
    }
    const shown = new Set(watched());
    for (const product of products) {
      if (shown.has(product.id)) showStock(product.id, product.available);
    }
    if (products.some((product) => !shown.has(product.id))) htmx.trigger("#catalog", "refresh");
  }

  function connection(state, text) {
    const badge = $("connection");
    badge.dataset.state = state;
    badge.textContent = text;
    // Without the live feed the catalog is fetched again every few seconds instead.
    clearInterval(pollTimer);
    pollTimer = null;
    if (state === "lost") pollTimer = setInterval(refreshStock, 3000);
  }

  function connectLiveStock() {
    if (typeof io !== "function") return connection("lost", "Live stock unavailable.");
    socket = io({ transports: ["websocket"], path: "/socket.io/" });
    let everConnected = false;
    socket.on("connect", () => {
      connection("live", everConnected ? "Connection restored — stock is live again." : "Live stock.");
      if (everConnected) refreshStock(); // what changed while away
      everConnected = true;
      watch();
    });
    const lost = () => {
      if ($("connection").dataset.state !== "lost") connection("lost", "Connection lost — reconnecting…");
    };
    socket.on("disconnect", lost);
    socket.on("connect_error", lost);
    socket.on("stock", (update) => showStock(update.product_id, update.available));
  }

  function watch() {
    const ids = watched();
    if (!socket || !socket.connected || !ids.length) return;
    // The ack carries the current values: a page that (re)connects is right at once.
    socket.emit("watch", { product_ids: ids }, (answer) => {
      if (answer && answer.ok) answer.stock.forEach((s) => showStock(s.product_id, s.available));
    });
  }

  // ------------------------------------------------------------------ wiring

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.classList.contains("add")) {
      event.preventDefault();
      const quantity = Number(form.elements.quantity.value);
      if (!Number.isInteger(quantity) || quantity < 1) {
        say("Choose a quantity of at least 1.");
        form.elements.quantity.focus();
        return;
      }
      addToCart(Number(form.dataset.productId), quantity);
    }
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id !== "catalog") return;
    showCart(cart); // names and prices of the cart's lines come from the catalog
    watch();
  });
  document.body.addEventListener("htmx:responseError", () => say("The catalog could not be loaded — retrying."));

  $("checkout").addEventListener("click", checkout);
  $("release").addEventListener("click", releaseAll);
  $("payment").addEventListener("submit", pay);
  $("order-done").addEventListener("click", endOrder);

  loadCart().then(() => {
    const pending = localStorage.getItem(KEYS.order);
    if (pending) {
      order = { id: pending };
      followOrder();
    }
  });
  connectLiveStock();
})();
