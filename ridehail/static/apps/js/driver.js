// The reference driver app: online and offline, the location from the device's GPS or a
// simulated drive along the route (demo), offers pushed over the WebSocket with a countdown
// to their deadline, accept or reject, arrive / start (with the rider's PIN when the server
// asks for one) / complete, the rating of the rider, earnings and history.
// Public REST API, the driver's WebSocket and the trip's event stream only.
import { api, ApiError, Session } from "./api.js";
import { setUpAuth } from "./auth.js";
import { DriverSocket, TripStream } from "./channels.js";
import { CITY_CENTRE, dot, fit, makeMap, metres, place, towards } from "./map.js";
import {
  $, announce, clearErrors, el, fmtLatLng, minutes, money, show, showError, submitting, text,
  when,
} from "./ui.js";

const LIVE = new Set(["driver_assigned", "driver_arrived", "in_progress"]);
const STATE_TEXT = {
  driver_assigned: "Drive to the pickup",
  driver_arrived: "Waiting for the rider at the pickup",
  in_progress: "Driving the rider to the dropoff",
  completed: "Ride complete",
  cancelled: "The ride was cancelled",
  requested: "The ride went back to dispatch",
  no_driver_found: "The ride was not taken",
};
const TICK_MS = 1000; // the simulated drive's step
const IDLE_SEND_MS = 4000; // a parked car still reports, so dispatch keeps seeing it

const session = new Session("driver");
const app = {
  map: null, pos: null, online: false, socket: null, offers: new Map(), trip: null,
  markers: {}, simTimer: null, gpsWatch: null, stream: null, countdown: null,
  lastSent: 0, sentFrames: 0, acks: 0, ready: false,
};
window.driverApp = app; // for the browser tests and for poking around in the console

const token = () => session.token;
const source = () => document.querySelector('input[name="source"]:checked').value;

function setConn(state) {
  const p = $("#conn");
  p.dataset.state = state;
  p.textContent = {
    open: "Connected: offers arrive here",
    connecting: "Connection lost: reconnecting…",
    closed: "",
  }[state] || "";
}

// --- position -----------------------------------------------------------------------------

function setPos(p) {
  app.pos = p;
  session.save({ pos: p });
  app.markers.car = place(app.map, app.markers.car, p, (q) => dot(q, "marker-car", "You", 9));
  text("#position", `Your position: ${fmtLatLng(p)}`);
}

function sendLocation(force = false) {
  if (!app.online || !app.pos || !app.socket) return;
  const now = Date.now();
  if (!force && now - app.lastSent < IDLE_SEND_MS) return;
  if (app.socket.send({ type: "location", lat: app.pos.lat, lng: app.pos.lng, id: `loc${app.sentFrames + 1}` })) {
    app.lastSent = now;
    app.sentFrames += 1;
  }
}

// Where the simulated car drives to: the pickup while coming, the dropoff while driving.
function target() {
  if (!app.trip) return null;
  if (app.trip.state === "driver_assigned") return app.trip.pickup;
  if (app.trip.state === "in_progress") return app.trip.dropoff;
  return null;
}

function simTick() {
  const goal = target();
  if (goal && app.pos && metres(app.pos, goal) > 1) {
    setPos(towards(app.pos, goal, Number($("#speed").value) * (TICK_MS / 1000)));
    sendLocation(true);
  } else {
    sendLocation(false);
  }
}

function startSource() {
  stopSource();
  if (source() === "gps") {
    if (!navigator.geolocation) {
      showError($("#status-form"), new ApiError(0, { errors: [{ field: "source", message: "this browser cannot share its location: use the simulated drive" }] }));
      return;
    }
    app.gpsWatch = navigator.geolocation.watchPosition(
      (pos) => {
        setPos({ lat: pos.coords.latitude, lng: pos.coords.longitude });
        sendLocation(true);
      },
      (err) => showError($("#status-form"), new ApiError(0, { errors: [{ field: "source", message: `GPS unavailable: ${err.message}` }] })),
      { enableHighAccuracy: true, maximumAge: 2000 },
    );
    app.simTimer = setInterval(() => sendLocation(false), TICK_MS);
  } else {
    app.simTimer = setInterval(simTick, TICK_MS);
  }
  sendLocation(true);
}

function stopSource() {
  clearInterval(app.simTimer);
  app.simTimer = null;
  if (app.gpsWatch !== null && navigator.geolocation) navigator.geolocation.clearWatch(app.gpsWatch);
  app.gpsWatch = null;
}

// --- online / offline ----------------------------------------------------------------------

function renderStatus(status) {
  const v = $("#status-value");
  v.dataset.status = status;
  v.textContent = status.replace(/_/g, " ");
  const btn = $("#toggle-online");
  btn.textContent = app.online ? "Go offline" : "Go online";
  btn.setAttribute("aria-pressed", String(app.online));
}

async function goOnline() {
  const out = await api("PUT", "/v1/drivers/me/status", { token: token(), body: { status: "online" } });
  app.online = true;
  session.save({ online: true });
  renderStatus(out.status);
  if (!app.pos) setPos({ lat: app.map.getCenter().lat, lng: app.map.getCenter().lng });
  app.socket.start();
  startSource();
}

async function goOffline() {
  const out = await api("PUT", "/v1/drivers/me/status", { token: token(), body: { status: "offline" } });
  app.online = false;
  session.save({ online: false });
  renderStatus(out.status);
  stopSource();
  app.socket.stop();
  app.offers.clear();
  renderOffer();
}

// --- offers ----------------------------------------------------------------------------------

function onFrame(frame) {
  if (frame.type === "offer") {
    const o = frame.offer;
    if (o.state === "pending" && Date.parse(o.deadline) > Date.now()) {
      app.offers.set(o.id, o);
      renderOffer();
      announce("New ride offer");
    }
  } else if (frame.type === "ack") {
    app.acks += 1;
  } else if (frame.type === "error") {
    const form = $("#status-form");
    showError(form, new ApiError(422, { detail: `${frame.field}: ${frame.detail}` }));
  }
}

function currentOffer() {
  let best = null;
  for (const o of app.offers.values()) {
    if (!best || Date.parse(o.deadline) < Date.parse(best.deadline)) best = o;
  }
  return best;
}

function renderOffer() {
  const o = currentOffer();
  clearInterval(app.countdown);
  show("#offer-error", false);
  if (!o || app.trip) {
    show("#offer", false);
    if (!app.trip) {
      app.markers.pickup = place(app.map, app.markers.pickup, null);
      app.markers.dropoff = place(app.map, app.markers.dropoff, null);
    }
    return;
  }
  show("#offer", true);
  if ($("#offer").dataset.offer !== o.id) fit(app.map, [app.pos, o.pickup, o.dropoff]);
  $("#offer").dataset.offer = o.id;
  $("#offer").dataset.trip = o.trip_id;
  text("#offer-pickup", `${(o.distance_m / 1000).toFixed(1)} km, ${minutes(o.eta_s)} away`);
  text("#offer-fare", money(o.fare_estimate));
  showStops(o.pickup, o.dropoff);
  const total = Math.max(1, Date.parse(o.deadline) - Date.parse(o.created_at));
  const tick = () => {
    const left = Date.parse(o.deadline) - Date.now();
    if (left <= 0) {
      app.offers.delete(o.id);
      announce("The offer expired");
      renderOffer();
      return;
    }
    text("#offer-left", Math.ceil(left / 1000));
    $("#offer-progress").value = Math.max(0, Math.min(100, (100 * left) / total));
  };
  tick();
  app.countdown = setInterval(tick, 250);
  $("#offer-accept").focus();
}

function showStops(pickup, dropoff) {
  app.markers.pickup = place(app.map, app.markers.pickup, pickup, (p) => dot(p, "marker-pickup", "Pickup", 9));
  app.markers.dropoff = place(app.map, app.markers.dropoff, dropoff, (p) => dot(p, "marker-dropoff", "Dropoff", 9));
}

async function answer(kind) {
  const o = currentOffer();
  if (!o) return;
  const buttons = [$("#offer-accept"), $("#offer-reject")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    const out = await api("POST", `/v1/offers/${o.id}/${kind}`, { token: token() });
    app.offers.delete(o.id);
    if (kind === "accept") renderTrip(out);
    else announce("Offer rejected");
    renderOffer();
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 409 || exc.status === 404)) app.offers.delete(o.id);
    renderOffer();
    text("#offer-error", exc.message);
    show("#offer-error", true);
    if (!currentOffer()) showError($("#status-form"), exc);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// --- the trip --------------------------------------------------------------------------------

function renderTrip(trip) {
  const was = app.trip;
  app.trip = LIVE.has(trip.state) ? trip : null;
  session.save({ trip: trip.id });
  if (!LIVE.has(trip.state)) {
    stopFollowing();
    if (app.online) renderStatus("available");
    if (trip.state === "completed") {
      showDone(trip);
    } else {
      show("#trip", false);
      showError($("#status-form"), new ApiError(409, { detail: STATE_TEXT[trip.state] || trip.state }));
      renderOffer();
    }
    return;
  }
  show("#offer", false);
  show("#done", false);
  show("#trip", true);
  renderStatus(trip.state === "in_progress" ? "on_trip" : "en_route");
  const st = $("#trip-state");
  st.dataset.state = trip.state;
  st.textContent = STATE_TEXT[trip.state];
  $("#trip").dataset.trip = trip.id;
  text("#trip-fare", money(trip.fare_estimate));
  text("#trip-pickup", fmtLatLng(trip.pickup));
  text("#trip-dropoff", fmtLatLng(trip.dropoff));
  show("#arrive", trip.state === "driver_assigned");
  show("#start", trip.state === "driver_arrived");
  show("#complete", trip.state === "in_progress");
  show("#pin-field", trip.state === "driver_arrived" && Boolean(trip.pickup_pin_required));
  showStops(trip.state === "in_progress" ? null : trip.pickup, trip.dropoff);
  if (!was || was.state !== trip.state) {
    announce(STATE_TEXT[trip.state]);
    fit(app.map, [app.pos, trip.state === "in_progress" ? null : trip.pickup, trip.dropoff]);
  }
  follow(trip.id);
}

// The trip's event stream: its changes the driver did not make (the rider's cancel) arrive
// here; on (re)connect it sends the trip as it is by then.
function follow(tripId) {
  if (app.stream && app.stream.tripId === tripId && !app.stream.stopped) return;
  stopFollowing();
  app.stream = new TripStream(tripId, token, {
    trip: (t) => {
      if (app.trip && app.trip.id === tripId && t.state !== app.trip.state) renderTrip(t);
    },
    location: () => {}, // the driver's own position: never sent to them
    state: () => {}, // #conn shows the WebSocket, which carries the offers
    ended: async () => {
      if (!app.trip || app.trip.id !== tripId) return;
      try {
        renderTrip(await api("GET", `/v1/trips/${tripId}`, { token: token() }));
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 404) {
          // no longer ours: the trip went back to dispatch
          app.trip = null;
          show("#trip", false);
        }
      }
    },
    revoked: () => auth.leave(),
  });
}

function stopFollowing() {
  if (app.stream) app.stream.stop();
  app.stream = null;
}

async function step(kind, body) {
  const form = $("#trip-form");
  const trip = app.trip;
  if (!trip) return;
  await submitting(form, async () => {
    const out = await api("POST", `/v1/trips/${trip.id}/${kind}`, { token: token(), body });
    renderTrip(out);
    sendLocation(true);
  });
}

async function showDone(trip) {
  show("#trip", false);
  show("#offer", false);
  show("#done", true);
  $("#done").dataset.trip = trip.id;
  showStops(null, null);
  clearErrors($("#rate-form"));
  show("#rate-form", true);
  show("#rated", false);
  text("#done-fare", money(trip.fare));
  try {
    const r = await api("GET", `/v1/trips/${trip.id}/receipt`, { token: token() });
    text("#done-payout", money(r.split.driver_payout));
    text("#done-payment", r.payment.state || "–");
    const mine = r.ratings && r.ratings.driver;
    if (mine) {
      show("#rate-form", false);
      text("#rated", `You rated this rider ${mine.stars} ★.`);
      show("#rated", true);
    }
  } catch (exc) {
    text("#done-payment", exc.message);
  }
}

// --- wiring ----------------------------------------------------------------------------------

function wire() {
  const statusForm = $("#status-form");
  statusForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(statusForm, () => (app.online ? goOffline() : goOnline()));
  });
  for (const radio of document.querySelectorAll('input[name="source"]')) {
    radio.addEventListener("change", () => {
      clearErrors(statusForm);
      if (app.online) startSource();
    });
  }
  $("#offer-accept").addEventListener("click", () => answer("accept"));
  $("#offer-reject").addEventListener("click", () => answer("reject"));
  $("#arrive").addEventListener("click", () => step("arrive"));
  $("#complete").addEventListener("click", () => step("complete"));
  $("#trip-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const needsPin = !$("#pin-field").hidden;
    step("start", needsPin ? { pin: $("#pin").value.trim() } : undefined);
  });
  const rate = $("#rate-form");
  rate.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tripId = $("#done").dataset.trip;
    submitting(rate, async () => {
      const stars = Number(rate.querySelector('input[name="stars"]:checked').value);
      const comment = $("#rate-comment").value.trim();
      await api("POST", `/v1/trips/${tripId}/rating`, { token: token(), body: comment ? { stars, comment } : { stars } });
      show(rate, false);
      text("#rated", `You rated this rider ${stars} ★. Thank you!`);
      show("#rated", true);
    });
  });
  $("#next").addEventListener("click", () => {
    show("#done", false);
    session.save({ trip: null });
    renderOffer();
  });
  const earnings = $("#earnings");
  earnings.addEventListener("toggle", async () => {
    if (!earnings.open) return;
    try {
      const e = await api("GET", "/v1/drivers/me/earnings", { token: token() });
      text("#earnings-balance", money(e.balance));
      text("#earnings-trips", e.totals.trips);
      $("#earnings-list").replaceChildren(...e.trips.slice(0, 20).map((t) =>
        el("li", { dataset: { trip: t.trip_id } }, when(t.at), " · ", el("b", {}, money(t.payout)))));
    } catch (exc) {
      $("#earnings-list").replaceChildren(el("li", { class: "error" }, exc.message));
    }
  });
  const history = $("#history");
  history.addEventListener("toggle", async () => {
    if (!history.open) return;
    try {
      const trips = await api("GET", "/v1/trips?limit=20", { token: token() });
      $("#history-list").replaceChildren(...(trips.length ? trips.map((t) => el("li", { dataset: { trip: t.id, state: t.state } },
        when(t.requested_at), " · ", el("b", {}, t.state.replace(/_/g, " ")), " · ", money(t.fare || t.fare_estimate))) :
        [el("li", {}, "No trips yet")]));
    } catch (exc) {
      $("#history-list").replaceChildren(el("li", { class: "error" }, exc.message));
    }
  });
}

// --- start -----------------------------------------------------------------------------------

async function signedIn() {
  if (!app.map) {
    const saved = session.load() || {};
    app.map = makeMap("map", saved.pos || CITY_CENTRE);
    app.map.on("click", (ev) => {
      // place the simulated car while no ride is under way
      if (source() !== "simulated" || app.trip) return;
      setPos({ lat: ev.latlng.lat, lng: ev.latlng.lng });
      sendLocation(true);
    });
  }
  app.socket = new DriverSocket(token, {
    frame: onFrame,
    state: (s) => {
      setConn(s);
      if (s === "open") sendLocation(true); // report at once after a reconnect
    },
    revoked: () => auth.leave(),
  });
  const saved = session.load() || {};
  if (saved.pos) setPos(saved.pos);
  let latest = null;
  try {
    [latest] = await api("GET", "/v1/trips?limit=1", { token: token() });
  } catch (exc) {
    announce(exc.message);
  }
  // Carry on: a live trip, or the state this browser left (online, the last receipt).
  if ((latest && LIVE.has(latest.state)) || saved.online) {
    try {
      await goOnline();
    } catch (exc) {
      showError($("#status-form"), exc);
    }
  } else {
    renderStatus("offline");
  }
  if (latest && LIVE.has(latest.state)) {
    renderTrip(await api("GET", `/v1/trips/${latest.id}`, { token: token() }));
  } else if (latest && saved.trip === latest.id && latest.state === "completed") {
    showDone(latest);
  }
  app.ready = true;
  document.body.dataset.ready = "true";
}

function signedOut() {
  stopSource();
  stopFollowing();
  clearInterval(app.countdown);
  if (app.socket) app.socket.stop();
  app.socket = null;
  app.online = false;
  app.trip = null;
  app.offers.clear();
  for (const id of ["offer", "trip", "done"]) show(`#${id}`, false);
  app.ready = false;
  setConn("closed");
  document.body.dataset.ready = "false";
}

wire();
// Logging out while online (and not on a ride) goes offline first: no offers to nobody.
const beforeLogOut = async () => {
  if (app.online && !app.trip) await goOffline();
};
const auth = setUpAuth({ session, signUpPath: "/v1/drivers", onSignedIn: signedIn, onSignedOut: signedOut, beforeLogOut });
if (session.token) {
  auth.enter().catch((exc) => announce(exc.message));
} else {
  show("#auth", true);
}
