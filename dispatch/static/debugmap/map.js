// The geo index debugging map. Layers are updated in place (features keyed by id), so a
// refresh every few seconds does not rebuild the map or make it flicker.
/* global L */
(function () {
  "use strict";
  const token = new URLSearchParams(location.search).get("access_token");
  const STATE_COLORS = { available: "#1a9850", offered: "#f39c12", en_route: "#2c7bb6",
    on_trip: "#8e44ad" };
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v == null ? "–" : v).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  // Exposed for tests and for poking at from the console.
  const dm = window.debugMap = { counts: {}, ready: false, version: null, bbox: null,
    resolution: null, refreshes: 0 };

  async function api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v != null) q.set(k, v);
    if (token) q.set("access_token", token);
    const res = await fetch(`${path}?${q}`, { headers: { Accept: "application/json" } });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((body && (body.detail || body.title)) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function setCount(name, n) {
    dm.counts[name] = n;
    const el = $(`count-${name}`);
    el.textContent = n;
    el.dataset.count = String(n);
  }

  // Replace a GeoJSON layer's content by features keyed by id: unchanged ids keep their
  // Leaflet layer (restyled or moved), so nothing blinks on refresh.
  function sync(group, features, make, update) {
    const seen = new Set();
    for (const f of features) {
      const id = String(f.id);
      seen.add(id);
      const old = group.byId.get(id);
      if (old) update(old, f);
      else {
        const layer = make(f);
        layer.feature = f;
        group.byId.set(id, layer);
        group.addLayer(layer);
      }
    }
    for (const [id, layer] of group.byId) {
      if (!seen.has(id)) { group.removeLayer(layer); group.byId.delete(id); }
    }
  }
  function keyedGroup(pane) {
    const g = L.featureGroup([], { pane });
    g.byId = new Map();
    return g;
  }
  const latlngs = (ring) => ring.map(([lng, lat]) => [lat, lng]);

  function cellStyle(p) {
    const ratio = p.total ? p.available / p.total : 0;
    const hue = Math.round(120 * ratio); // red (none available) .. green (all available)
    return { color: `hsl(${hue},60%,35%)`, weight: 1, fillColor: `hsl(${hue},65%,50%)`,
      fillOpacity: Math.min(0.15 + 0.08 * p.total, 0.6) };
  }
  const driverStyle = (p) => ({ radius: 5, weight: 1, color: "#222", fillOpacity: 0.9,
    fillColor: STATE_COLORS[p.state] || "#7f8c8d" });
  const tripStyle = (p) => ({ color: p.state === "requested" ? "#e67e22" : "#34495e",
    weight: 4, opacity: 0.85, dashArray: p.state === "requested" ? "6 4" : null });

  let map, layers, cfg, timer = null, inFlight = false, again = false;

  async function init() {
    cfg = await api("/debug/config");
    map = L.map("map", { preferCanvas: false, zoomSnap: 0.25 });
    for (const [name, z] of [["area", 390], ["cells", 410], ["surge", 415], ["trips", 440],
      ["drivers", 450], ["inspect", 460]]) {
      map.createPane(name).style.zIndex = z;
    }
    map.getPane("inspect").style.pointerEvents = "none";
    dm.map = map;
    layers = { cells: keyedGroup("cells"), drivers: keyedGroup("drivers"),
      trips: keyedGroup("trips"), surge: keyedGroup("surge"),
      inspect: L.featureGroup([], { pane: "inspect" }) };
    const base = await baseLayer();
    base.addTo(map);
    const area = L.geoJSON(await api("/debug/service_area.geojson"), { pane: "area",
      interactive: false, style: { color: "#2c3e50", weight: 2, fill: false } }).addTo(map);
    for (const k of ["cells", "surge", "trips", "drivers", "inspect"]) layers[k].addTo(map);
    L.control.layers({ [cfg.tile_url ? "tiles" : "neighbourhoods"]: base }, {
      "H3 cells (available / total)": layers.cells, "drivers by state": layers.drivers,
      "open trips": layers.trips, surge: layers.surge, "service area": area,
      "nearest query": layers.inspect }, { collapsed: false }).addTo(map);
    map.fitBounds(cfg.bounds);

    const sel = $("resolution");
    for (const r of cfg.resolutions) sel.add(new Option(String(r), String(r)));
    sel.value = String(cfg.default_resolution);
    sel.addEventListener("change", refresh);
    map.on("moveend", refresh);
    map.on("click", (e) => inspectNearest(e.latlng.lat, e.latlng.lng));
    $("step-back").addEventListener("click", () => step(+1));
    $("step-forward").addEventListener("click", () => step(-1));
    $("go-live").addEventListener("click", () => { dm.version = null; refresh(); });
    document.querySelectorAll("button.close").forEach((b) => b.addEventListener("click",
      () => { $(b.dataset.close).hidden = true; if (b.dataset.close === "nearest") layers.inspect.clearLayers(); }));
    await refresh();
    timer = setInterval(() => { if (dm.version == null) refresh(); }, cfg.refresh_s * 1000);
  }

  async function baseLayer() {
    // Tiles need the internet; by default the base map is drawn from shipped NYC outlines.
    if (cfg.tile_url) return L.tileLayer(cfg.tile_url, { maxZoom: 19 });
    const data = await fetch("static/nyc_neighbourhoods.geojson").then((r) => r.json());
    return L.geoJSON(data, { pane: "area", interactive: false,
      style: { color: "#95a5a6", weight: 1, fillColor: "#f4f1ea", fillOpacity: 1 } });
  }

  function bboxParam() {
    const b = map.getBounds();
    const c = (v, lo, hi) => Math.min(hi, Math.max(lo, v)).toFixed(5);
    return [c(b.getWest(), -180, 180), c(b.getSouth(), -90, 90), c(b.getEast(), -180, 180),
      c(b.getNorth(), -90, 90)].join(",");
  }

  async function refresh() {
    // A slow answer must not pile up requests; a change made meanwhile (step, resolution,
    // pan) is applied by one more refresh when this one ends.
    if (inFlight) { again = true; return; }
    inFlight = true;
    again = false;
    const status = [];
    try {
      const snap = await api("/debug/snapshot", { version: dm.version });
      showSnapshot(snap);
      const version = snap.version;
      const bbox = bboxParam();
      const resolution = Number($("resolution").value);
      const [cells, drivers, trips, surge] = await Promise.all([
        api("/debug/cells.geojson", { resolution, bbox, version }).catch((e) => {
          status.push(e.message); return { features: [] };
        }),
        api("/debug/drivers.geojson", { bbox, version }),
        api("/debug/trips.geojson", { bbox }),
        api("/debug/surge.geojson", { bbox }),
      ]);
      sync(layers.cells, cells.features,
        (f) => L.polygon(latlngs(f.geometry.coordinates[0]), { pane: "cells",
          ...cellStyle(f.properties) }).bindTooltip(() => cellTip(f)),
        (l, f) => { l.feature = f; l.setStyle(cellStyle(f.properties)); });
      sync(layers.drivers, drivers.features,
        (f) => L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
          pane: "drivers", className: "driver", bubblingMouseEvents: false,
          ...driverStyle(f.properties) }).bindTooltip((l) => driverTip(l.feature)),
        (l, f) => { l.feature = f; l.setLatLng([f.geometry.coordinates[1],
          f.geometry.coordinates[0]]); l.setStyle(driverStyle(f.properties)); });
      sync(layers.trips, trips.features, (f) => {
        const line = L.polyline(latlngs(f.geometry.coordinates), { pane: "trips",
          className: "trip-line", bubblingMouseEvents: false, ...tripStyle(f.properties) });
        line.on("click", () => showRecord(line.feature.properties.trip_id));
        return line.bindTooltip((l) => `trip ${esc(l.feature.properties.trip_id)} · ${esc(l.feature.properties.state)}`);
      }, (l, f) => { l.feature = f; l.setLatLngs(latlngs(f.geometry.coordinates));
        l.setStyle(tripStyle(f.properties)); });
      sync(layers.surge, surge.features,
        (f) => L.polygon(latlngs(f.geometry.coordinates[0]), { pane: "surge", color: "#e74c3c",
          weight: 2, fill: false }).bindTooltip((l) => `surge ×${esc(l.feature.properties.multiplier)}`),
        (l, f) => { l.feature = f; });
      setCount("cells", cells.features.length);
      setCount("drivers", drivers.features.length);
      setCount("trips", trips.features.length);
      setCount("surge", surge.features.length);
      if (drivers.meta.truncated) status.push(`drivers truncated at ${drivers.meta.limit}`);
      Object.assign(dm, { bbox, resolution, shownVersion: version });
      dm.refreshes += 1;
      dm.ready = true;
      document.body.dataset.ready = "true";
    } catch (e) {
      status.push(e.message);
      if (e.status === 404) dm.version = null; // the pinned version aged out: back to live
    } finally {
      inFlight = false;
      $("status").textContent = status.join("; ");
    }
    if (again) refresh();
  }

  const cellTip = (f) => `${esc(f.properties.cell)}<br>${f.properties.available} / ${f.properties.total} available`;
  const driverTip = (f) => `${esc(f.properties.driver_id)}<br>${esc(f.properties.state)} · ${esc(f.properties.vehicle_class)}`;

  let recent = [];
  function showSnapshot(s) {
    // Step only through pinned versions: the index's own history lasts a fraction of a second.
    recent = s.recent.filter((r) => r.pinned || r.version === s.current_version)
      .map((r) => r.version);
    $("snapshot").dataset.version = String(s.version);
    $("snap-version").textContent = s.version;
    $("snap-published").textContent = s.published_at.replace("T", " ").slice(0, 23);
    $("snap-total").textContent = s.drivers.total;
    $("snap-available").textContent = s.drivers.available;
    $("snap-ms").textContent = s.publish_ms.toFixed(2);
    $("snap-backend").textContent = `${s.backend}, res ${s.resolution}`;
    const live = dm.version == null;
    $("snap-mode").textContent = live ? "live" : `past (live is ${s.current_version})`;
    $("snap-mode").classList.toggle("past", !live);
  }

  // Step through the recent versions the server still holds (newest first in `recent`).
  function step(dir) {
    const cur = dm.version == null ? recent[0] : dm.version;
    const i = recent.indexOf(cur);
    const next = recent[Math.max(0, Math.min(recent.length - 1, (i < 0 ? 0 : i) + dir))];
    dm.version = next === recent[0] && dir < 0 ? null : next;
    refresh();
  }

  async function inspectNearest(lat, lng) {
    const panel = $("nearest");
    try {
      const fc = await api("/debug/nearest.geojson", { lat: lat.toFixed(6), lng: lng.toFixed(6),
        k: Math.max(1, Math.min(100, Number($("k").value) || 5)), radius_m: cfg.dispatch_radius_m, version: dm.version });
      layers.inspect.clearLayers();
      L.geoJSON(fc, { pane: "inspect", interactive: false,
        style: (f) => ({ radius: { color: "#2980b9", weight: 1, fillOpacity: 0.04 },
          searched_cell: { color: "#2980b9", weight: 1, dashArray: "2 3", fillOpacity: 0.05 },
        }[f.properties.role] || {}),
        pointToLayer: (f, ll) => L.circleMarker(ll, f.properties.role === "query"
          ? { radius: 6, color: "#000", fillColor: "#fff", fillOpacity: 1, weight: 2 }
          : f.properties.role === "neighbor"
            ? { radius: 9, color: "#2980b9", weight: 3, fill: false }
            : { radius: 8, color: "#c0392b", weight: 2, fill: false, dashArray: "2 2" }),
      }).addTo(layers.inspect);
      const x = fc.meta.explain;
      dm.nearest = x;
      dm.nearestAt = { lat: fc.meta.query.lat, lng: fc.meta.query.lng, k: fc.meta.k,
        radius_m: fc.meta.radius_m, version: fc.meta.version };
      const found = x.found.map((n, i) => `<tr><td class="num">${i + 1}</td><td><code>${esc(n.driver_id)}</code></td><td class="num">${n.distance_m.toFixed(0)} m</td></tr>`).join("");
      const filtered = Object.entries(x.filtered_counts).map(([r, n]) =>
        `<tr><td>${esc(r)}</td><td class="num" data-reason="${esc(r)}">${n}</td></tr>`).join("");
      $("nearest-body").innerHTML = `
        <p>${lat.toFixed(5)}, ${lng.toFixed(5)} · k=${fc.meta.k} · radius ${fc.meta.radius_m} m · snapshot ${fc.meta.version}</p>
        <dl><dt>rings</dt><dd id="nearest-rings">${x.rings_searched}</dd>
        <dt>cells</dt><dd>${x.cells_searched}</dd>
        <dt>examined</dt><dd id="nearest-examined">${x.candidates_examined}</dd>
        <dt>outranked</dt><dd>${x.outranked}</dd></dl>
        <h3>found (${x.found.length})</h3>
        <table id="nearest-found" data-count="${x.found.length}"><tr><th>#</th><th>driver</th><th>distance</th></tr>${found}</table>
        <h3>filtered out</h3><table id="nearest-filtered"><tr><th>reason</th><th>drivers</th></tr>${filtered}</table>`;
      panel.hidden = false;
    } catch (e) {
      $("status").textContent = e.message;
    }
  }

  async function showRecord(tripId) {
    try {
      const r = await api(`/debug/trips/${encodeURIComponent(tripId)}/record`);
      dm.record = r;
      const cands = r.candidates.map((c) => `<tr><td class="num">${esc(c.rank)}</td><td><code>${esc(c.driver_id)}</code></td><td class="num">${esc(c.distance_m)} m</td><td class="num">${esc(c.eta_s)} s</td><td class="outcome outcome-${esc(c.outcome)}">${esc(c.outcome)}</td></tr>`).join("");
      const searches = r.searches.map((s, i) => {
        const why = Object.entries(s.filtered_counts).filter(([, n]) => n > 0)
          .map(([reason, n]) => `${esc(reason)}: ${n} (${(s.filtered[reason] || []).slice(0, 5).map(esc).join(", ")})`).join("; ") || "none";
        return `<li>search ${i + 1}: radius ${esc(s.radius_m)} m, snapshot ${esc(s.snapshot)}, ${s.candidates.length} candidate(s), examined ${esc(s.examined)}; filtered out: <span class="filtered">${why}</span></li>`;
      }).join("");
      const skipped = r.skipped.map((s) => `<li><code>${esc(s.driver_id)}</code>: ${esc(s.reason)}</li>`).join("");
      $("record-body").innerHTML = `
        <p>trip <code id="record-trip">${esc(r.trip.id)}</code> · <b>${esc(r.trip.state)}</b> · driver <code>${esc(r.trip.driver_id)}</code> · ${esc(r.trip.vehicle_class)}</p>
        <h3>candidates offered, in order</h3>
        <table id="record-candidates" data-count="${r.candidates.length}"><tr><th>rank</th><th>driver</th><th>dist</th><th>eta</th><th>outcome</th></tr>${cands}</table>
        <h3>searches</h3><ol id="record-searches">${searches}</ol>
        ${skipped ? `<h3>skipped</h3><ul>${skipped}</ul>` : ""}
        <p>outcome: ${esc(r.outcome || "open")} · ${r.events.length} events</p>`;
      $("record").hidden = false;
    } catch (e) {
      $("status").textContent = e.message;
    }
  }

  init().catch((e) => { $("status").textContent = `map failed to start: ${e.message}`; });
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
