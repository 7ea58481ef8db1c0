// The push channels, kept connected: the driver's WebSocket (/v1/drivers/me/ws) and a
// trip's event stream (/v1/trips/{id}/events, Server-Sent Events; the rider's app and, on a
// ride, the driver's). A dropped
// connection is opened again with a growing back-off; the server then catches the client up
// (pending offers sent again on connect; the trip's current state first on the stream), so
// the apps lose nothing they need.
import { withToken } from "./api.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000];
// The app's own heartbeat: a socket that stops answering (a network that vanished without a
// close, as a phone's does) is noticed within PING_MS + PONG_WAIT_MS, not at the TCP timeout.
const PING_MS = 5000;
const PONG_WAIT_MS = 4000;

export class DriverSocket {
  // handlers: {frame(obj), state(status), revoked()}; status: "connecting" | "open" | "closed"
  constructor(tokenFn, handlers) {
    this.tokenFn = tokenFn;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.seq = 0;
    this.onOnline = () => this.reconnectNow();
    // The browser lost its network: the socket is as good as dead, whatever it says.
    this.onOffline = () => this.drop();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    clearTimeout(this.timer);
    this.clearHeartbeat();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.handlers.state("closed");
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  open() {
    const token = this.tokenFn();
    if (!token || this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${withToken("/v1/drivers/me/ws", token)}`);
    this.ws = ws;
    this.handlers.state("connecting");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.handlers.state("open");
      this.heartbeat();
    });
    ws.addEventListener("message", (ev) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === "pong") clearTimeout(this.pongTimer);
      this.handlers.frame(frame);
    });
    ws.addEventListener("close", (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.clearHeartbeat();
      if (ev.code === 4001) { // the token was revoked (logged out elsewhere)
        this.stopped = true;
        this.handlers.state("closed");
        this.handlers.revoked();
        return;
      }
      this.retry();
    });
  }

  retry() {
    if (this.stopped) return;
    this.handlers.state("connecting");
    // Offline, a try can only fail: the browser's "online" event reconnects at once.
    if (!navigator.onLine) return;
    const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait);
  }

  reconnectNow() {
    if (this.stopped || this.isOpen) return;
    this.attempt = 0;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
    this.open();
  }

  // A dead socket (no pong in time) is dropped and opened again.
  drop() {
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = null;
    this.clearHeartbeat();
    try {
      ws.close();
    } catch {
      // closing a socket that never opened
    }
    this.retry();
  }

  heartbeat() {
    this.clearHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.isOpen) return;
      this.seq += 1;
      this.ws.send(JSON.stringify({ type: "ping", id: `hb${this.seq}` }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.drop(), PONG_WAIT_MS);
    }, PING_MS);
  }

  clearHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

export class TripStream {
  // handlers: {trip(view), location(pos), ended(reason), state(status), revoked()}
  constructor(tripId, tokenFn, handlers) {
    this.tripId = tripId;
    this.tokenFn = tokenFn;
    this.handlers = handlers;
    this.es = null;
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.onOnline = () => {
      if (this.es || this.stopped) return;
      clearTimeout(this.timer);
      this.attempt = 0;
      this.open();
    };
    // The browser lost its network: close the stream (it would stall) and wait for "online";
    // on connect the server sends the trip as it is by then.
    this.onOffline = () => {
      this.closeSource();
      this.retry();
    };
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.open();
  }

  open() {
    const token = this.tokenFn();
    if (!token || this.stopped) return;
    const es = new EventSource(withToken(`/v1/trips/${this.tripId}/events`, token));
    this.es = es;
    this.handlers.state("connecting");
    es.addEventListener("open", () => {
      this.attempt = 0;
      this.handlers.state("open");
    });
    es.addEventListener("trip", (ev) => this.handlers.trip(JSON.parse(ev.data)));
    es.addEventListener("location", (ev) => this.handlers.location(JSON.parse(ev.data)));
    es.addEventListener("close", (ev) => {
      const reason = JSON.parse(ev.data).reason;
      this.closeSource();
      if (reason === "trip_ended") {
        this.stop();
        this.handlers.ended(reason);
      } else if (reason === "revoked") {
        this.stop();
        this.handlers.revoked();
      } else {
        this.retry(); // the server is shutting down, or another stream replaced this one
      }
    });
    es.addEventListener("error", () => {
      if (es !== this.es) return;
      // EventSource retries by itself while it says CONNECTING; CLOSED (an HTTP error, or
      // its own retry given up) is ours to retry.
      // Offline, its own retries can only fail: stop them and wait for "online".
      if (es.readyState === EventSource.CLOSED || !navigator.onLine) {
        this.closeSource();
        this.retry();
      } else {
        this.handlers.state("connecting");
      }
    });
  }

  closeSource() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  retry() {
    if (this.stopped) return;
    this.handlers.state("connecting");
    // Offline, a try can only fail: the browser's "online" event reconnects at once.
    if (!navigator.onLine) return;
    const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    this.closeSource();
    this.handlers.state("closed");
  }
}
