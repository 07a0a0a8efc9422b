// The dashboard's shell: the API key form, light/dark switch, and a router on location.pathname
// (every /ui/... page is served the same index.html).
import { getKey, setKey } from "./api.js";
import { navigate } from "./dom.js";
import { jobsPage, newJobPage } from "./pages/jobs.js";
import { jobPage } from "./pages/job.js";
import { advicePage, openRule } from "./pages/advice.js";
import { diagnosePage } from "./pages/diagnose.js";

const THEME = "optim-advisor.theme";
let cleanup = null;

function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t; else delete document.documentElement.dataset.theme;
}

function setupChrome() {
  applyTheme(localStorage.getItem(THEME));
  document.getElementById("theme").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme === "dark" ||
      (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    const next = dark ? "light" : "dark";
    localStorage.setItem(THEME, next); applyTheme(next);
  });
  const input = document.getElementById("api-key"), state = document.getElementById("key-state");
  const show = () => { state.textContent = getKey() ? "key set (this tab)" : ""; };
  input.value = getKey(); show();
  document.getElementById("key-form").addEventListener("submit", e => {
    e.preventDefault(); setKey(input.value.trim()); show(); route();
  });
  document.addEventListener("click", e => {
    const a = e.target.closest("a");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    const rule = url.pathname.match(/^\/v1\/rules\/([^/]+)$/);
    if (rule) { e.preventDefault(); openRule(decodeURIComponent(rule[1])); return; }
    if (url.pathname.startsWith("/ui/") && !url.pathname.startsWith("/ui/static/")) {
      e.preventDefault(); navigate(url.pathname + url.search);
    }
  });
  addEventListener("popstate", route);
}

function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const main = document.getElementById("app");
  main.replaceChildren();
  const p = location.pathname.replace(/\/+$/, "") || "/ui";
  let m, nav = null;
  if (p === "/ui") { nav = "jobs"; cleanup = jobsPage(main); }
  else if (p === "/ui/new") { nav = "new"; cleanup = newJobPage(main); }
  else if ((m = p.match(/^\/ui\/jobs\/([0-9a-f]{32})$/))) { nav = "jobs"; cleanup = jobPage(main, m[1]); }
  else if (p === "/ui/advice") { nav = "advice"; cleanup = advicePage(main); }
  else if (p === "/ui/diagnose") { nav = "diagnose"; cleanup = diagnosePage(main); }
  else main.append(Object.assign(document.createElement("p"), { textContent: "No such page." }));
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (typeof cleanup !== "function") cleanup = null;
}

setupChrome();
route();
