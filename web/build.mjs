// Copies the front-end dependencies from node_modules into the folders the API serves:
// Leaflet for the debug map (dispatch/static/debugmap/vendor) and for the rider and driver
// apps (ridehail/static/apps/vendor). `make web-vendor` runs it after `npm ci`; nothing is
// fetched from a CDN at run time.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const root = join(web, "..");
const leaflet = join(web, "node_modules", "leaflet", "dist");
const targets = ["dispatch/static/debugmap/vendor", "ridehail/static/apps/vendor"];

for (const target of targets) {
  const out = join(root, target);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const file of ["leaflet.js", "leaflet.css"]) {
    cpSync(join(leaflet, file), join(out, file));
  }
  cpSync(join(leaflet, "images"), join(out, "images"), { recursive: true });
  console.log(`web: Leaflet -> ${target}`);
}
