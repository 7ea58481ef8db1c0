// The reference rider app: nearby vehicles, pickup and dropoff, the upfront quote, a trip
// watched over its event stream, cancel (with its fee rule shown first), the receipt, the
// rating, the payment method and the trip history. Public REST API and push channels only.
/* global L */
import { api, ApiError, Session } from "./api.js";
import { setUpAuth } from "./auth.js";
import { TripStream } from "./channels.js";
import { dot, fit, makeMap, place } from "./map.js";
import {
  $, announce, clearErrors, clock, el, fmtLatLng, minutes, money, parseLatLng, show,
  showError, submitting, text, when,
} from "./ui.js";

const OPEN = new Set(["requested", "driver_assigned", "driver_arrived", "in_progress"]);
const STATE_TEXT = {
  requested: "Finding you a driver…",
  driver_assigned: "Your driver is on the way",
  driver_arrived: "Your driver is at the pickup",
  in_progress: "On the way to your destination",
  completed: "You have arrived",
  cancelled: "The ride was cancelled",
  no_driver_found: "No driver could take this ride",
};
const NEARBY_EVERY_MS = 4000;
// The written fare rules (README "Fares"), as a rider reads them.
const FARE_RULES = {
  quote: "the upfront price",
  metered_longer: "metered: the route was longer",
  metered_capped: "metered, capped above the upfront price",
  metered_shorter: "metered: the ride ended early",
  cancel_fee: "cancellation fee",
  no_show_fee: "no-show fee",
};

const session = new Session("rider");
const app = {
  map: null, pickup: null, dropoff: null, trip: null, stream: null, markers: {},
  nearbyLayer: null, nearbyTimer: null, receiptTimer: null, lastNearby: null, ready: false,
};
window.riderApp = app; // for the browser tests and for poking around in the console

const token = () => session.token;

function setConn(state) {
  const p = $("#conn");
  p.dataset.state = state;
  p.textContent = {
    open: "Live updates on",
    connecting: "Connection lost: reconnecting…",
    closed: "",
    idle: "",
  }[state] || "";
}

// --- the map ------------------------------------------------------------------------------

function ensureMap() {
  if (app.map) return;
  app.map = makeMap("map");
  app.nearbyLayer = L.layerGroup().addTo(app.map);
  app.map.on("click", (ev) => {
    if (app.trip && OPEN.has(app.trip.state)) return;
    const which = document.querySelector('input[name="tap"]:checked').value;
    setPoint(which, { lat: ev.latlng.lat, lng: ev.latlng.lng });
    if (which === "pickup") document.querySelector('input[name="tap"][value="dropoff"]').checked = true;
  });
}

function setPoint(which, latlng) {
  app[which] = latlng;
  $(`#${which}`).value = fmtLatLng(latlng);
  clearErrors($("#plan-form"));
  app.markers[which] = place(app.map, app.markers[which], latlng,
    (p) => dot(p, `marker-${which}`, which === "pickup" ? "Pickup" : "Dropoff", 9));
  if (which === "pickup") refreshNearby();
  // both ends in view once both are set (a typed dropoff may be off the map)
  const bounds = app.map.getBounds();
  if (app.pickup && app.dropoff &&
      ![app.pickup, app.dropoff].every((p) => bounds.contains([p.lat, p.lng]))) {
    fit(app.map, [app.pickup, app.dropoff]);
  }
  refreshQuote();
}

// --- nearby vehicles and the quote ---------------------------------------------------------

async function refreshNearby() {
  if (!token() || (app.trip && OPEN.has(app.trip.state))) return;
  const at = app.pickup || { lat: app.map.getCenter().lat, lng: app.map.getCenter().lng };
  const cls = $("#vehicle-class").value;
  const q = new URLSearchParams({ lat: at.lat.toFixed(6), lng: at.lng.toFixed(6), limit: "10", vehicle_class: cls });
  try {
    const fc = await api("GET", `/v1/vehicles/nearby?${q}`, { token: token() });
    app.lastNearby = fc;
    app.nearbyLayer.clearLayers();
    for (const f of fc.features) {
      const [lng, lat] = f.geometry.coordinates;
      dot({ lat, lng }, "marker-vehicle", `${f.properties.vehicle_class}, ${minutes(f.properties.eta_s)} away`, 6)
        .addTo(app.nearbyLayer);
    }
    const n = fc.features.length;
    text("#nearby", n === 0 ? "No vehicles nearby right now" :
      `${n} vehicle${n === 1 ? "" : "s"} nearby · nearest ${minutes(fc.features[0].properties.eta_s)} away`);
  } catch (exc) {
    text("#nearby", `Nearby vehicles unavailable: ${exc.message}`);
  }
}

function startNearby() {
  stopNearby();
  refreshNearby();
  app.nearbyTimer = setInterval(refreshNearby, NEARBY_EVERY_MS);
}

function stopNearby() {
  clearInterval(app.nearbyTimer);
  app.nearbyTimer = null;
  if (app.nearbyLayer) app.nearbyLayer.clearLayers();
}

async function refreshQuote() {
  const form = $("#plan-form");
  $("#request").disabled = !(app.pickup && app.dropoff);
  if (!app.pickup || !app.dropoff) {
    show("#quote", false);
    return;
  }
  try {
    const q = await api("POST", "/v1/quotes", {
      token: token(), body: { pickup: app.pickup, dropoff: app.dropoff },
    });
    text("#quote-fare", money(q.fare_estimate));
    text("#quote-surge", `${Number(q.surge_multiplier).toFixed(2)}×`);
    text("#quote-route", `${(q.distance_m / 1000).toFixed(1)} km, about ${minutes(q.duration_s)}`);
    show("#quote", true);
  } catch (exc) {
    show("#quote", false);
    $("#request").disabled = true;
    showError(form, exc);
  }
}

// --- the ride --------------------------------------------------------------------------------

function showOnly(id) {
  for (const s of ["plan", "ride", "done"]) show(`#${s}`, s === id);
}

function showPlan(message) {
  showOnly("plan");
  app.markers.driver = place(app.map, app.markers.driver, null);
  startNearby();
  refreshQuote();
  const general = $('#plan-form [data-error-for="*"]');
  general.textContent = message || "";
  general.hidden = !message;
}

function cancelRule(trip) {
  const c = trip.cancellation;
  if (!c) return "";
  if (c.fee.amount === 0) return "Cancelling is free.";
  if (!c.free_until) {
    return `Cancelling is free now. Once a driver is assigned it stays free for ${Math.round(c.free_for_s / 60)} min, then costs ${money(c.fee)}.`;
  }
  const left = Date.parse(c.free_until) - Date.now();
  if (left > 0) return `Cancelling is free until ${clock(c.free_until)}; after that it costs ${money(c.fee)}.`;
  return `Cancelling now costs ${money(c.fee)} (free only for ${Math.round(c.free_for_s / 60)} min after a driver was assigned).`;
}

function cancelFeeNow(trip) {
  const c = trip.cancellation;
  if (!c || c.fee.amount === 0 || !c.free_until) return null;
  return Date.parse(c.free_until) - Date.now() > 0 ? null : c.fee;
}

function renderTrip(trip) {
  const was = app.trip;
  app.trip = trip;
  session.save({ trip: trip.id });
  if (!OPEN.has(trip.state)) {
    finishTrip(trip);
    return;
  }
  showOnly("ride");
  stopNearby();
  const st = $("#ride-state");
  st.dataset.state = trip.state;
  st.textContent = STATE_TEXT[trip.state] || trip.state;
  text("#ride-fare", money(trip.fare_estimate));
  text("#ride-surge", `${Number(trip.surge_multiplier).toFixed(2)}×`);
  text("#ride-driver", { requested: "searching…", driver_assigned: "on the way", driver_arrived: "waiting at the pickup", in_progress: "driving you" }[trip.state] || "–");
  show("#pin", Boolean(trip.pickup_pin));
  text("#pin-value", trip.pickup_pin || "");
  text("#cancel-terms", cancelRule(trip));
  show("#cancel", Boolean(trip.cancellation));
  app.pickup = trip.pickup;
  app.dropoff = trip.dropoff;
  app.markers.pickup = place(app.map, app.markers.pickup, trip.pickup, (p) => dot(p, "marker-pickup", "Pickup", 9));
  app.markers.dropoff = place(app.map, app.markers.dropoff, trip.dropoff, (p) => dot(p, "marker-dropoff", "Dropoff", 9));
  if (trip.driver_location) moveDriver(trip.driver_location);
  else if (!trip.driver_id) app.markers.driver = place(app.map, app.markers.driver, null);
  if (!was || was.id !== trip.id || was.state !== trip.state) {
    announce(STATE_TEXT[trip.state] || trip.state);
    fit(app.map, [trip.pickup, trip.dropoff, trip.driver_location]);
  }
}

function moveDriver(pos) {
  app.markers.driver = place(app.map, app.markers.driver, pos, (p) => dot(p, "marker-driver", "Your driver", 8));
  $("#ride-driver").dataset.lat = pos.lat;
  $("#ride-driver").dataset.lng = pos.lng;
}

function follow(tripId) {
  if (app.stream && app.stream.tripId === tripId && !app.stream.stopped) return;
  if (app.stream) app.stream.stop();
  app.stream = new TripStream(tripId, token, {
    trip: renderTrip,
    location: moveDriver,
    state: setConn,
    ended: async () => {
      // the stream's last `trip` event carried the final state; read it once more to be sure
      try {
        renderTrip(await api("GET", `/v1/trips/${tripId}`, { token: token() }));
      } catch (exc) {
        announce(exc.message);
      }
    },
    revoked: () => auth.leave(),
  });
}

function finishTrip(trip) {
  if (app.stream && app.stream.tripId === trip.id) {
    app.stream.stop();
    app.stream = null;
  }
  setConn("idle");
  app.markers.driver = place(app.map, app.markers.driver, null);
  if (trip.state === "completed") {
    // the stream's last event and its `close` may both end the ride: one receipt
    if ($("#done").hidden || $("#done").dataset.trip !== trip.id) showReceipt(trip.id);
    return;
  }
  let message = STATE_TEXT[trip.state] || trip.state;
  if (trip.state === "cancelled" && trip.fare) message += `; cancellation fee ${money(trip.fare)}`;
  app.trip = null;
  showPlan(message);
}

async function showReceipt(tripId) {
  showOnly("done");
  stopNearby();
  clearTimeout(app.receiptTimer);
  text("#done-state", STATE_TEXT.completed);
  $("#done").dataset.trip = tripId;
  clearErrors($("#rate-form"));
  let tries = 0;
  const load = async () => {
    let r;
    try {
      r = await api("GET", `/v1/trips/${tripId}/receipt`, { token: token() });
    } catch (exc) {
      text("#receipt-payment", exc.message);
      return;
    }
    text("#receipt-total", money(r.fare.total));
    text("#receipt-estimate", money(r.fare.estimate));
    text("#receipt-rule", FARE_RULES[r.fare.rule] || r.fare.rule || "–");
    text("#receipt-surge", `${Number(r.fare.surge_multiplier).toFixed(2)}×`);
    text("#receipt-distance", r.fare.distance_m == null ? "–" : `${(r.fare.distance_m / 1000).toFixed(2)} km`);
    const pay = $("#receipt-payment");
    pay.dataset.state = r.payment.state || "";
    pay.textContent = r.payment.state === "failed" ?
      `failed (${r.payment.last_error || "declined"}): add a payment method below` : (r.payment.state || "–");
    const mine = r.ratings && r.ratings.rider;
    show("#rate-form", !mine);
    show("#rated", Boolean(mine));
    if (mine) text("#rated", `You rated this ride ${mine.stars} ★. Thank you!`);
    if (r.payment.state === "pending" && tries++ < 15 && $("#done").dataset.trip === tripId) {
      app.receiptTimer = setTimeout(load, 1000);
    }
  };
  await load();
}

// --- wiring ----------------------------------------------------------------------------------

function wirePlan() {
  const form = $("#plan-form");
  for (const which of ["pickup", "dropoff"]) {
    $(`#${which}`).addEventListener("change", (ev) => {
      const p = parseLatLng(ev.target.value);
      if (!p) {
        showError(form, new ApiError(422, { errors: [{ field: which, message: "enter it as lat, lng (e.g. 40.758, -73.9855)" }] }));
        return;
      }
      setPoint(which, p);
    });
  }
  $("#vehicle-class").addEventListener("change", refreshNearby);
  $("#locate").addEventListener("click", () => {
    if (!navigator.geolocation) {
      showError(form, new ApiError(0, { errors: [{ field: "pickup", message: "this browser cannot share its location" }] }));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        const p = { lat: pos.coords.latitude, lng: pos.coords.longitude };
        app.map.setView([p.lat, p.lng]);
        setPoint("pickup", p);
      },
      (err) => showError(form, new ApiError(0, { errors: [{ field: "pickup", message: `location unavailable: ${err.message}` }] })),
      { enableHighAccuracy: true, timeout: 10000 },
    );
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(form, async () => {
      try {
        const trip = await api("POST", "/v1/trips", {
          token: token(),
          body: { pickup: app.pickup, dropoff: app.dropoff, vehicle_class: $("#vehicle-class").value },
        });
        renderTrip(trip);
        if (OPEN.has(trip.state)) follow(trip.id);
      } catch (exc) {
        if (exc instanceof ApiError && exc.fields.payment_method) $("#payment").open = true;
        throw exc;
      }
    }).finally(() => {
      $("#request").disabled = !(app.pickup && app.dropoff);
    });
  });
}

function wireCancel() {
  const dialog = $("#cancel-dialog");
  $("#cancel").addEventListener("click", () => {
    if (!app.trip) return;
    const fee = cancelFeeNow(app.trip);
    text("#cancel-dialog-fee", fee ? `Cancelling now costs ${money(fee)}.` : "Cancelling now is free.");
    text("#cancel-dialog-rule", cancelRule(app.trip));
    show("#cancel-dialog-error", false);
    dialog.showModal();
  });
  $("#cancel-confirm").addEventListener("click", async () => {
    const trip = app.trip;
    if (!trip) return;
    try {
      const out = await api("POST", `/v1/trips/${trip.id}/cancel`, { token: token(), body: { reason: "changed my mind" } });
      dialog.close();
      renderTrip(out);
    } catch (exc) {
      text("#cancel-dialog-error", exc.message);
      show("#cancel-dialog-error", true);
    }
  });
}

function wireDone() {
  const form = $("#rate-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tripId = $("#done").dataset.trip;
    submitting(form, async () => {
      const stars = Number(form.querySelector('input[name="stars"]:checked').value);
      const comment = $("#rate-comment").value.trim();
      await api("POST", `/v1/trips/${tripId}/rating`, {
        token: token(), body: comment ? { stars, comment } : { stars },
      });
      show(form, false);
      text("#rated", `You rated this ride ${stars} ★. Thank you!`);
      show("#rated", true);
      $("#rated").focus?.();
    });
  });
  $("#new-ride").addEventListener("click", () => {
    app.trip = null;
    session.save({ trip: null });
    app.dropoff = null;
    $("#dropoff").value = "";
    app.markers.dropoff = place(app.map, app.markers.dropoff, null);
    showPlan();
  });
}

function wirePayment() {
  const form = $("#payment-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(form, async () => {
      const out = await api("POST", "/v1/riders/me/payment-methods", {
        token: token(), body: { token: $("#payment-token").value.trim() },
      });
      const retried = out.retried_trips.length ? `; retrying the payment of ${out.retried_trips.length} trip(s)` : "";
      text("#payment-saved", `Saved ${out.token} as your payment method${retried}.`);
      clearErrors($("#plan-form"));
    });
  });
}

function wireHistory() {
  const details = $("#history");
  details.addEventListener("toggle", async () => {
    if (!details.open) return;
    const list = $("#history-list");
    list.replaceChildren(el("li", {}, "Loading…"));
    try {
      const trips = await api("GET", "/v1/trips?limit=20", { token: token() });
      list.replaceChildren(...(trips.length ? trips.map((t) => el("li", { dataset: { trip: t.id, state: t.state } },
        el("span", {}, when(t.requested_at)), " · ", el("b", {}, t.state.replace(/_/g, " ")),
        " · ", money(t.fare || t.fare_estimate),
        t.state === "completed" ? el("button", { type: "button", class: "link", onclick: () => showReceipt(t.id) }, "Receipt") : null,
      )) : [el("li", {}, "No trips yet")]));
    } catch (exc) {
      list.replaceChildren(el("li", { class: "error" }, exc.message));
    }
  });
}

// --- start -----------------------------------------------------------------------------------

async function signedIn() {
  ensureMap();
  // Carry on where we were: the open trip, or the last one's receipt.
  const saved = session.load() || {};
  let latest = null;
  try {
    [latest] = await api("GET", "/v1/trips?limit=1", { token: token() });
  } catch (exc) {
    announce(exc.message);
  }
  if (latest && OPEN.has(latest.state)) {
    renderTrip(await api("GET", `/v1/trips/${latest.id}`, { token: token() }));
    follow(latest.id);
  } else if (latest && saved.trip === latest.id && latest.state === "completed") {
    app.trip = latest;
    showReceipt(latest.id);
  } else {
    showPlan();
  }
  app.ready = true;
  document.body.dataset.ready = "true";
}

function signedOut() {
  if (app.stream) app.stream.stop();
  app.stream = null;
  stopNearby();
  clearTimeout(app.receiptTimer);
  app.trip = null;
  app.ready = false;
  setConn("idle");
  document.body.dataset.ready = "false";
}

wirePlan();
wireCancel();
wireDone();
wirePayment();
wireHistory();
const auth = setUpAuth({ session, signUpPath: "/v1/riders", onSignedIn: signedIn, onSignedOut: signedOut });
if (session.token) {
  auth.enter().catch((exc) => announce(exc.message));
} else {
  show("#auth", true);
}
