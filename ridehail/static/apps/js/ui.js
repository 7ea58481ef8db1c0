// Small DOM helpers shared by both apps: problem+json errors next to the field they name,
// live announcements, money and time formats.
import { ApiError } from "./api.js";

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function show(el, on = true) {
  (typeof el === "string" ? $(el) : el).hidden = !on;
}

export function text(sel, value) {
  const el = typeof sel === "string" ? $(sel) : sel;
  el.textContent = value == null ? "" : String(value);
  return el;
}

// Clear a form's errors: each `[data-error-for]` element and the inputs' aria-invalid.
export function clearErrors(form) {
  for (const el of $$("[data-error-for]", form)) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of $$("[aria-invalid]", form)) el.removeAttribute("aria-invalid");
}

// The element that shows errors about `field` in `form`: the exact name, else its nearest
// parent (`pickup.lat` -> `pickup`), else the form's general error (`*`).
function errorSlot(form, field) {
  const parts = field.split(".");
  while (parts.length) {
    const slot = $(`[data-error-for="${parts.join(".")}"]`, form);
    if (slot) return slot;
    parts.pop();
  }
  return null;
}

export function showError(form, exc) {
  clearErrors(form);
  const general = $('[data-error-for="*"]', form);
  const fields = exc instanceof ApiError ? exc.fields : {};
  let placed = 0;
  for (const [field, message] of Object.entries(fields)) {
    const slot = errorSlot(form, field);
    if (!slot) continue;
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    slot.hidden = false;
    const input = document.getElementById(slot.dataset.input || "") ||
      $(`[name="${slot.dataset.errorFor}"]`, form);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      if (placed === 0) input.focus();
    }
    placed += 1;
  }
  if (placed === 0 || placed < Object.keys(fields).length) {
    const target = general || errorSlot(form, "*");
    if (target) {
      target.textContent = exc.message || String(exc);
      target.hidden = false;
    } else {
      announce(exc.message || String(exc));
    }
  }
}

// Run an async form action: clears the errors, disables the submit button meanwhile, and
// puts a problem's messages next to their fields.
export async function submitting(form, action) {
  clearErrors(form);
  const buttons = $$("button", form);
  buttons.forEach((b) => (b.disabled = true));
  try {
    return await action();
  } catch (exc) {
    showError(form, exc);
    return undefined;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

export function announce(message) {
  const el = $("#announce");
  if (el) el.textContent = message;
}

export function money(m) {
  if (!m) return "–";
  const sign = m.currency === "USD" ? "$" : `${m.currency} `;
  return `${sign}${m.display}`;
}

export function clock(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function minutes(seconds) {
  if (seconds == null) return "–";
  const m = Math.max(1, Math.round(seconds / 60));
  return `${m} min`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function parseLatLng(value) {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)\s*$/.exec(value || "");
  if (!m) return null;
  return { lat: Number(m[1]), lng: Number(m[2]) };
}

export function fmtLatLng(p) {
  return p ? `${p.lat.toFixed(5)}, ${p.lng.toFixed(5)}` : "";
}
