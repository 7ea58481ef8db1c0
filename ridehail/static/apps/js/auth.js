// Sign up and log in, shared by both apps: the forms' fields are named after the API's
// (dotted names nest: `vehicle.plate`), so a problem's `errors[].field` lands next to its
// input. The token is saved in localStorage; logging out revokes it (DELETE
// /v1/sessions/current) before forgetting it.
import { api, ApiError, logOut } from "./api.js";
import { $, show, submitting, clearErrors } from "./ui.js";

export function formBody(form) {
  const body = {};
  for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    if (input.type === "radio" && !input.checked) continue;
    let value = input.value;
    if (value === "" && !input.required) continue;
    if (input.type === "number" && value !== "") value = Number(value);
    const path = input.name.split(".");
    let at = body;
    for (const part of path.slice(0, -1)) at = at[part] = at[part] || {};
    at[path[path.length - 1]] = value;
  }
  return body;
}

// Wires the auth section; `onSignedIn(profile)` runs once a valid token is held.
export function setUpAuth({ session, signUpPath, onSignedIn, onSignedOut, beforeLogOut = null }) {
  const loginForm = $("#login-form");
  const signupForm = $("#signup-form");
  const tabs = { login: $("#tab-login"), signup: $("#tab-signup") };

  function choose(which) {
    for (const [name, tab] of Object.entries(tabs)) {
      tab.setAttribute("aria-selected", String(name === which));
    }
    show(loginForm, which === "login");
    show(signupForm, which === "signup");
    clearErrors(loginForm);
    clearErrors(signupForm);
  }
  tabs.login.addEventListener("click", () => choose("login"));
  tabs.signup.addEventListener("click", () => choose("signup"));

  loginForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(loginForm, async () => {
      const out = await api("POST", "/v1/sessions", { body: formBody(loginForm) });
      if (out.role !== session.role) {
        // a valid token of the wrong kind: revoke it rather than keep it
        await api("DELETE", "/v1/sessions/current", { token: out.token });
        throw new ApiError(403, {
          detail: `this is the ${session.role} app; that account is a ${out.role}`,
          errors: [{ field: "email", message: `a ${out.role} account: use the ${out.role} app` }],
        });
      }
      session.save({ token: out.token, id: out.id });
      await enter();
    });
  });

  signupForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(signupForm, async () => {
      const out = await api("POST", signUpPath, { body: formBody(signupForm) });
      session.save({ token: out.token, id: out.id });
      await enter();
    });
  });

  $("#logout").addEventListener("click", async () => {
    try {
      if (beforeLogOut) await beforeLogOut().catch(() => {});
      await logOut(session);
    } finally {
      leave();
    }
  });

  function leave() {
    session.clear();
    show("#app", false);
    show("#auth", true);
    show("#logout", false);
    $("#who").textContent = "";
    onSignedOut();
  }

  async function enter() {
    let me;
    try {
      me = await api("GET", "/v1/me", { token: session.token });
    } catch (exc) {
      if (exc instanceof ApiError && (exc.status === 401 || exc.status === 403)) {
        leave();
        return;
      }
      throw exc;
    }
    show("#auth", false);
    show("#app", true);
    show("#logout", true);
    const stars = me.rating && me.rating.count ? ` · ★ ${Number(me.rating.average).toFixed(2)}` : "";
    $("#who").textContent = `${me.name}${stars}`;
    await onSignedIn(me);
  }

  choose("login");
  return { enter, leave };
}
