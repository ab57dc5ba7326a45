// morph bot playground: a Discord-like channel view over the local fake Discord.
// Plain JS, no build step. Every piece of user or bot text goes through esc() before it reaches innerHTML.
"use strict";

const state = {
  me: null, channel: null, channels: [], members: [], byId: {}, messages: new Map(), commands: [], examples: [], history: [], histPos: -1,
  files: [], pictures: [],  // attached files {name, data (base64), url}; pictures the page suggests
  acIndex: 0, acRows: [], events: null, openSelect: null, dismissed: new Set(),
};
const $ = (id) => document.getElementById(id);
const COLORS = ["#5865f2", "#3ba55c", "#faa61a", "#ed4245", "#eb459e", "#9b59b6", "#1abc9c", "#e67e22"];

// The page's own words in the language of the member it acts as (bot/playground/page.py PAGE_TEXTS, from the
// bot's catalogues): elements with data-ui="key" get theirs on every load.
function ui(key, fallback) { return (state.ui && state.ui[key]) || fallback; }

function applyUi(texts, lang) {
  state.ui = texts || {};
  document.documentElement.lang = lang || "en";
  document.querySelectorAll("[data-ui]").forEach((el) => {
    const t = state.ui[el.dataset.ui];
    if (!t) return;
    if (el.tagName === "INPUT") el.placeholder = t; else el.textContent = t;
  });
}

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function colorFor(user) {
  if (user && user.color) return user.color;
  const id = String((user && user.id) || "0");
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

function avatar(user, cls) {
  const name = (user && user.name) || "?";
  return `<div class="avatar ${cls || ""}" style="background:${esc(colorFor(user))}">${esc(name[0].toUpperCase())}</div>`;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date();
  return d.toDateString() === today.toDateString() ? `Today at ${t}` : `${d.toLocaleDateString()} ${t}`;
}

function relTime(unix) {
  const s = Math.round(unix - Date.now() / 1000);
  const a = Math.abs(s);
  const txt = a < 60 ? `${a} seconds` : a < 3600 ? `${Math.round(a / 60)} minutes`
    : a < 172800 ? `${Math.round(a / 3600)} hours` : `${Math.round(a / 86400)} days`;
  return s >= 0 ? `in ${txt}` : `${txt} ago`;
}

// A small, safe subset of Discord markdown. Input is escaped first; patterns only add our own tags.
function markdown(text) {
  let s = esc(text);
  const blocks = [];
  // Backslash escapes (discord.utils.escape_markdown) show the character itself, never formatting.
  s = s.replace(/\\(&gt;|&lt;|[*_~`|\\\[\]()#\-])/g, (_, ch) => { blocks.push(ch); return `\u0000${blocks.length - 1}\u0000`; });
  s = s.replace(/```(?:[a-z]*\n)?([\s\S]*?)```/g, (_, code) => { blocks.push(`<pre>${code}</pre>`); return `\u0000${blocks.length - 1}\u0000`; });
  s = s.replace(/`([^`\n]+)`/g, (_, code) => { blocks.push(`<code>${code}</code>`); return `\u0000${blocks.length - 1}\u0000`; });
  const keep = (html) => { blocks.push(html); return `\u0000${blocks.length - 1}\u0000`; };
  s = s.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, text, url) => keep(
    `<a href="${url}" target="_blank" rel="noopener noreferrer">${text}</a>`));
  // A link to a message of this channel jumps to it in the page, as Discord's client does.
  s = s.replace(/https:\/\/discord\.com\/channels\/\d+\/\d+\/(\d+)/g, (_, id) => keep(
    `<a class="jump" data-action="jump" data-target="${id}">#morph › message</a>`));
  s = s.replace(/https?:\/\/[^\s<]+[^\s<.,:;!?)'"]/g, (url) => keep(
    `<a href="${url}" target="_blank" rel="noopener noreferrer">${url}</a>`));
  s = s.replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>")
       .replace(/__([^_]+)__/g, "<u>$1</u>")
       .replace(/\*([^*\n]+)\*/g, "<i>$1</i>")
       .replace(/(^|[\s(])_([^_\n]+)_(?=$|[\s).,!?])/g, "$1<i>$2</i>")
       .replace(/~~([^~]+)~~/g, "<s>$1</s>")
       .replace(/^-# (.*)$/gm, '<span class="muted" style="font-size:12px">$1</span>')
       .replace(/^### (.*)$/gm, "<b>$1</b>").replace(/^## (.*)$/gm, "<b>$1</b>").replace(/^# (.*)$/gm, "<b>$1</b>")
       .replace(/^&gt; (.*)$/gm, '<span class="quote">$1</span>')
       .replace(/&lt;@!?(\d+)&gt;/g, (_, id) => `<span class="mention">@${esc((state.byId[id] || {}).name || id)}</span>`)
       .replace(/&lt;@&amp;(\d+)&gt;/g, '<span class="mention">@role</span>')
       .replace(/&lt;#(\d+)&gt;/g, '<span class="mention">#morph</span>')
       .replace(/&lt;t:(\d+)(?::([tTdDfFR]))?&gt;/g, (_, n, f) => {
         const u = Number(n);
         return `<span class="mention">${esc(f === "R" ? relTime(u) : new Date(u * 1000).toLocaleString())}</span>`;
       })
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => blocks[Number(i)]);
}

// One line of plain text for reply previews: mentions as @name, markdown markers dropped.
function plainText(text) {
  return String(text || "")
    .replace(/<@!?(\d+)>/g, (_, id) => "@" + ((state.byId[id] || {}).name || id))
    .replace(/<t:(\d+)(?::[tTdDfFR])?>/g, (_, n) => new Date(Number(n) * 1000).toLocaleTimeString())
    .replace(/\\([*_~`|>\\\[\]()#-])/g, "$1")
    .replace(/\*\*|__|~~|`/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

// The per-run token the server put in the page: every API call must carry it (see server.py).
const TOKEN = document.querySelector('meta[name="playground-token"]').content;

async function api(path, body) {
  const headers = { "X-Playground-Token": TOKEN };
  const res = await fetch(path, body === undefined ? { headers } : {
    method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { /* empty body */ }
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

// ---------- rendering ----------

function renderEmbed(e) {
  const color = e.color != null ? "#" + Number(e.color).toString(16).padStart(6, "0") : "#1e1f22";
  let h = `<div class="embed" style="border-left-color:${esc(color)}">`;
  if (e.author && e.author.name) h += `<div class="muted" style="font-size:13px">${esc(e.author.name)}</div>`;
  if (e.title) h += `<div class="embed-title">${markdown(e.title)}</div>`;
  if (e.description) h += `<div class="embed-desc">${markdown(e.description)}</div>`;
  if (e.fields && e.fields.length) {
    h += `<div class="embed-fields">` + e.fields.map((f) =>
      `<div class="embed-field ${f.inline ? "" : "block"}"><div class="fname">${markdown(f.name)}</div><div>${markdown(f.value)}</div></div>`).join("") + `</div>`;
  }
  if (e.thumbnail && e.thumbnail.url) h += `<img class="embed-thumb" src="${esc(e.thumbnail.url)}" alt="">`;
  if (e.image && e.image.url) {
    const small = e.image.width && e.image.width <= 480;  // tiny-model sheets: scale up without blurring
    h += `<img class="embed-image ${small ? "pixel" : ""}" src="${esc(e.image.url)}" alt="">`;
  }
  if (e.footer && e.footer.text) h += `<div class="embed-footer">${esc(e.footer.text)}</div>`;
  return h + `</div>`;
}

function renderAttachment(a) {
  const isVideo = /^video\//.test(a.content_type || "") || /\.(mp4|webm|mov)$/i.test(a.filename || "");
  if (isVideo) {  // as Discord shows a video attachment: a player with controls (no autoplay)
    const small = a.width && a.width <= 160;
    return `<div class="attachment video ${small ? "pixel" : ""}"><video src="${esc(a.url)}" controls loop muted playsinline preload="auto" title="${esc(a.filename)}"></video><div class="fname">${esc(a.filename)}</div></div>`;
  }
  const isImg = /^image\//.test(a.content_type || "") || /\.(gif|png|jpe?g|webp)$/i.test(a.filename || "");
  if (!isImg) {
    return `<div class="attachment file-card"><a href="${esc(a.url)}" download="${esc(a.filename)}">${esc(a.filename)}</a>
      <span class="muted"> ${esc(Math.round((a.size || 0) / 1024))} KB</span></div>`;
  }
  const small = a.width && a.width <= 160;
  return `<div class="attachment ${small ? "pixel" : ""}"><img src="${esc(a.url)}" alt="${esc(a.filename)}" title="${esc(a.filename)}" loading="lazy"><div class="fname">${esc(a.filename)}</div></div>`;
}

function renderComponents(msg) {
  const rows = (msg.components || []).map((row) => {
    const items = (row.components || [row]).map((c, i) => {
      if (c.type === 2) {
        const label = `${c.emoji && c.emoji.name ? esc(c.emoji.name) + " " : ""}${esc(c.label || "")}`;
        if (c.style === 5) return `<a class="btn s5" href="${esc(c.url)}" target="_blank" rel="noopener noreferrer">${label} ↗</a>`;
        return `<button class="btn s${esc(c.style || 2)}" data-action="click" data-custom-id="${esc(c.custom_id)}" ${c.disabled ? "disabled" : ""}>${label}</button>`;
      }
      if (c.type === 3) {
        const multi = (c.max_values || 1) > 1;
        const opts = (c.options || []).map((o) =>
          `<div class="select-opt" data-value="${esc(o.value)}">${multi ? "<input type=checkbox>" : ""}<div><div>${o.emoji && o.emoji.name ? esc(o.emoji.name) + " " : ""}${esc(o.label)}</div>${o.description ? `<div class="desc">${esc(o.description)}</div>` : ""}</div></div>`).join("");
        return `<div class="select" data-custom-id="${esc(c.custom_id)}" data-min="${esc(c.min_values == null ? 1 : c.min_values)}" data-max="${esc(c.max_values || 1)}">
          <div class="select-box" data-action="toggle-select" tabindex="0">${esc(c.placeholder || "Make a selection")}</div>
          <div class="select-menu" hidden>${opts}${multi ? '<button class="btn s1 select-apply" data-action="apply-select">Send</button>' : ""}</div></div>`;
      }
      return `<span class="muted">[component ${esc(c.type)}]</span>`;
    }).join("");
    return `<div class="row">${items}</div>`;
  }).join("");
  return rows ? `<div class="components">${rows}</div>` : "";
}

function renderMessage(m) {
  const author = m.author || { name: "?" };
  const member = state.byId[author.id] || {};
  let h = "";
  if (m.reference_id) {
    const ref = state.messages.get(String(m.reference_id));
    const refName = ref ? (ref.author || {}).name : "a message";
    const refText = ref ? (plainText(ref.content) || (ref.attachments && ref.attachments.length ? "Click to see attachment" : "")) : "";
    h += `<div class="msg-ref" data-action="jump" data-target="${esc(m.reference_id)}">${ref ? avatar(ref.author, "tiny") : ""}<span class="ref-name">${esc(refName)}</span> <span>${esc(refText.slice(0, 80))}</span></div>`;
  } else if (m.interaction && m.interaction.name) {
    h += `<div class="msg-ref"><span class="ref-name">${esc(m.interaction.user_name || "")}</span> used <span class="cmd">/${esc(m.interaction.name)}</span></div>`;
  }
  h += avatar(author);
  h += `<div class="body"><div class="msg-head"><span class="author ${member.admin ? "admin" : ""}">${esc(author.name)}</span>`;
  if (author.bot) h += `<span class="bot-tag">${author.system ? "System" : "Bot"}</span>`;
  h += `<span class="time" title="${esc(m.timestamp || "")}">${esc(fmtTime(m.timestamp))}</span></div>`;
  if (m.content) h += `<div class="content ${m.error ? "error-text" : ""}">${markdown(m.content)}${m.edited_timestamp ? '<span class="edited">(edited)</span>' : ""}</div>`;
  if (m.attachments && m.attachments.length) h += `<div class="attachments">${m.attachments.map(renderAttachment).join("")}</div>`;
  for (const e of m.embeds || []) h += renderEmbed(e);
  h += renderComponents(m);
  if (m.reactions && m.reactions.length) {
    h += `<div class="reactions">` + m.reactions.map((r) => {
      const mine = (r.users || []).includes(state.me);
      return `<button class="reaction ${mine ? "me" : ""}" data-action="react" data-emoji="${esc(r.emoji)}" title="React with ${esc(r.emoji)}">${esc(r.emoji)} <span>${esc(r.count)}</span></button>`;
    }).join("") + `</div>`;
  }
  if (m.ephemeral) h += `<div class="eph-note">Only you can see this · <a data-action="dismiss">Dismiss message</a></div>`;
  h += `</div>`;
  return h;
}

function upsertMessage(m) {
  if (m.ephemeral && m.for_user && String(m.for_user) !== String(state.me)) return;
  if (state.dismissed.has(String(m.id))) return;
  const id = String(m.id);
  state.messages.set(id, m);
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  let el = document.getElementById("m-" + id);
  if (!el) {
    el = document.createElement("div");
    el.id = "m-" + id;
    el.dataset.id = id;
    list.appendChild(el);
  }
  el.className = "msg" + (m.ephemeral ? " ephemeral" : "") + (m.system ? " system-msg" : "");
  el.innerHTML = renderMessage(m);
  if (nearBottom || m.local) scrollDown();
  for (const img of el.querySelectorAll("img")) img.addEventListener("load", () => { if (nearBottom) scrollDown(); });
}

function scrollDown() { const l = $("messages"); l.scrollTop = l.scrollHeight; }

function removeMessage(id) {
  state.messages.delete(String(id));
  const el = document.getElementById("m-" + id);
  if (el) el.remove();
}

let localId = 0;
function systemMessage(text, isError) {
  upsertMessage({
    id: `local-${++localId}`, local: true, ephemeral: true, system: true, error: !!isError,
    author: { id: "system", name: "Playground", bot: true, system: true, color: "#4e5058" },
    content: text, timestamp: new Date().toISOString(),
  });
}

function renderMembers() {
  const sel = $("member-switch");
  sel.innerHTML = state.members.filter((m) => !m.bot).map((m) =>
    `<option value="${esc(m.id)}" ${String(m.id) === String(state.me) ? "selected" : ""}>${esc(m.name)}${m.admin ? " (admin)" : ""}${m.locale === "ja" ? " · 日本語" : ""}</option>`).join("");
  const me = state.byId[state.me] || { name: "?" };
  $("me-avatar").outerHTML = avatar(me, "small").replace('class="avatar small"', 'class="avatar small" id="me-avatar"');
  $("me-name").textContent = me.name;
  $("me-role").textContent = me.admin ? ui("admin-role", "Admin · Manage Server") : ui("member-role", "Member");
  $("members").innerHTML = state.members.map((m) =>
    `<div class="member ${String(m.id) === String(state.me) ? "current" : ""}">${avatar(m)}<div><div class="${m.admin ? "author admin" : "author"}">${esc(m.name)}${m.bot ? ' <span class="bot-tag">Bot</span>' : ""}</div><div class="role">${m.bot ? "the real MorphBot" : m.admin ? "Manage Server" : "member"}${m.locale ? ` · ${esc(m.locale)}` : ""}</div></div></div>`).join("");
}

function renderHelp() {
  const tries = state.examples.map((e) =>
    `<div class="help-row" data-example="${esc(e)}"><code>${esc(e)}</code></div>`).join("")
    + (state.pictures.length ? `<div class="help-row muted">Pictures to try: click one (or drag it onto the command box) to attach it, then <code>/morph-images to:"a blue square"</code>; attach both for a picture → picture morph.</div>
       <div class="toy-pictures">${state.pictures.map((u) => `<img src="${esc(u)}" alt="toy picture" title="attach ${esc(u.split("/").pop())}" data-picture="${esc(u)}" draggable="true">`).join("")}</div>` : "");
  $("help").innerHTML = (state.commands.length ? state.commands.map((c) =>
    `<div class="help-row" data-usage="${esc(c.usage)}"><code>${esc(c.usage)}</code>${c.admin ? ' <span class="ac-admin">admin</span>' : ""}<span class="muted">${esc(c.description)}</span></div>`).join("")
    : '<div class="muted">Waiting for the bot to sync its commands…</div>')
    + (tries ? `<h3 class="muted">Try (prompts this model knows)</h3>${tries}` : "");
}

function renderQueue(jobs) {
  $("queue-count").textContent = jobs.length ? `(${jobs.length})` : "";
  $("queue").innerHTML = jobs.length ? jobs.map((j) => `<div class="job" data-job="${esc(j.id)}">
      <div class="job-top"><span class="job-id">#${esc(j.id)}</span><span class="state ${esc(j.state)}">${esc(j.state)}${j.position ? " · " + esc(j.position) : ""}</span></div>
      <div class="job-prompts" title="${esc(j.prompts.join(" → "))}">${esc(j.prompts.join(" → "))}</div>
      <div class="job-meta">${esc(j.user_name)} · ${esc(j.frames)} frames${j.error ? " · " + esc(j.error) : ""}</div></div>`).join("")
    : `<div class="muted">${esc(ui("no-jobs", "No jobs yet. Type a /morph command below."))}</div>`;
}

// ---------- autocomplete ----------

function updateAutocomplete() {
  const v = $("command-input").value;
  const box = $("autocomplete");
  if (!v.startsWith("/") || !state.commands.length) { box.hidden = true; state.acRows = []; return; }
  const typed = v.slice(1).toLowerCase().replace(/\s+/g, " ");
  const rows = state.commands.filter((c) => {
    const u = c.usage.slice(1).split(" [")[0].split(" <")[0];
    return u.startsWith(typed.split(" ").slice(0, u.split(" ").length).join(" ")) || typed.startsWith(u + " ") || u.startsWith(typed);
  });
  state.acRows = rows;
  if (!rows.length) { box.hidden = true; return; }
  state.acIndex = Math.min(state.acIndex, rows.length - 1);
  box.innerHTML = `<div class="ac-title">Commands matching ${esc(v.split(" ")[0])}</div>` + rows.map((c, i) =>
    `<div class="ac-row ${i === state.acIndex ? "sel" : ""}" data-ac="${i}"><span class="ac-usage">${esc(c.usage)}</span>${c.admin ? '<span class="ac-admin">admin</span>' : ""}<span class="ac-desc">${esc(c.description)}</span></div>`).join("");
  box.hidden = false;
}

function completeWith(row) {
  const base = row.usage.split(" [")[0].split(" <")[0];
  const input = $("command-input");
  if (!input.value.startsWith(base + " ")) input.value = base + " ";
  input.focus();
  $("autocomplete").hidden = true;
}

// ---------- actions ----------

async function sendCommand(text) {
  text = text.trim();
  if (!text) return;
  state.history.unshift(text);
  state.histPos = -1;
  if (!text.startsWith("/")) {
    systemMessage("This playground talks to the bot through slash commands: start with '/', e.g. /morph dog cat", true);
    return;
  }
  const files = state.files.map((f) => ({ name: f.name, data: f.data }));
  try {
    const body = { user: state.me, channel: state.channel, text };
    await api("/api/command", files.length ? { ...body, files } : body);
    clearFiles();
  } catch (e) {
    systemMessage(e.message, true);
  }
}

// ---------- attached pictures (/morph-images) ----------

function readAsBase64(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",", 2)[1] || "");
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

async function addFile(blob, name) {
  state.files.push({ name, data: await readAsBase64(blob), url: URL.createObjectURL(blob) });
  renderAttachments();
}

async function addPicture(url) {  // one of the suggested pictures (same origin)
  const res = await fetch(url);
  if (!res.ok) { systemMessage(`Could not load ${url}`, true); return; }
  await addFile(await res.blob(), url.split("/").pop());
}

function clearFiles() {
  for (const f of state.files) URL.revokeObjectURL(f.url);
  state.files = [];
  renderAttachments();
}

function renderAttachments() {
  const box = $("attachments");
  box.hidden = !state.files.length;
  box.innerHTML = state.files.map((f, i) => `<span class="attachment-chip"><img src="${esc(f.url)}" alt="">${esc(f.name)} <button type="button" data-remove-file="${i}" title="remove">✕</button></span>`).join("")
    + (state.files.length ? '<span class="muted"> attached, in order: first, second</span>' : "");
}

async function onDrop(ev) {
  ev.preventDefault();
  $("composer").classList.remove("dropping");
  const files = [...(ev.dataTransfer.files || [])];
  if (files.length) { for (const f of files) await addFile(f, f.name); return; }
  const url = ev.dataTransfer.getData("text/uri-list") || ev.dataTransfer.getData("text/plain");
  if (url && new URL(url, location.href).origin === location.origin) await addPicture(new URL(url, location.href).pathname);
}

async function interact(path, body, el) {
  if (el) el.classList.add("busy");
  try { await api(path, body); } catch (e) { systemMessage(e.message, true); }
  finally { if (el) el.classList.remove("busy"); }
}

function onMessagesClick(ev) {
  const opt = ev.target.closest(".select-opt");
  if (opt) { pickOption(opt); return; }
  const t = ev.target.closest("[data-action], img");
  if (!t) { closeSelect(); return; }
  const msgEl = t.closest(".msg");
  const mid = msgEl && msgEl.dataset.id;
  const act = t.dataset.action;
  if (t.tagName === "IMG" && !act) { showLightbox(t.src); return; }
  if (act === "click") interact("/api/click", { user: state.me, message: mid, custom_id: t.dataset.customId }, t);
  else if (act === "react") interact("/api/react", { user: state.me, message: mid, emoji: t.dataset.emoji }, t);
  else if (act === "dismiss") { state.dismissed.add(String(mid)); removeMessage(mid); }
  else if (act === "jump") {
    const target = document.getElementById("m-" + t.dataset.target);
    if (target) target.scrollIntoView({ behavior: "smooth", block: "center" });
  } else if (act === "toggle-select") {
    const menu = t.parentElement.querySelector(".select-menu");
    const open = menu.hidden;
    closeSelect();
    menu.hidden = !open;
    if (open) state.openSelect = menu;
  } else if (act === "apply-select") {
    const sel = t.closest(".select");
    const values = [...sel.querySelectorAll(".select-opt input:checked")].map((i) => i.closest(".select-opt").dataset.value);
    if (values.length < Number(sel.dataset.min)) { systemMessage(`Pick at least ${sel.dataset.min}.`, true); return; }
    closeSelect();
    interact("/api/select", { user: state.me, message: mid, custom_id: sel.dataset.customId, values }, sel);
  }
}

// A click on an option of a select menu: one value sends at once; several are ticked, then "Send".
function pickOption(opt) {
  const sel = opt.closest(".select");
  const mid = opt.closest(".msg").dataset.id;
  if (Number(sel.dataset.max) > 1) {
    const box = opt.querySelector("input");
    const checked = sel.querySelectorAll(".select-opt input:checked").length;
    if (box.checked || checked < Number(sel.dataset.max)) box.checked = !box.checked;
  } else {
    closeSelect();
    interact("/api/select", { user: state.me, message: mid, custom_id: sel.dataset.customId, values: [opt.dataset.value] }, sel);
  }
}

function closeSelect() { if (state.openSelect) { state.openSelect.hidden = true; state.openSelect = null; } }

function showLightbox(src) {
  const lb = document.createElement("div");
  lb.id = "lightbox";
  lb.innerHTML = `<img src="${esc(src)}" alt="">`;
  lb.addEventListener("click", () => lb.remove());
  document.body.appendChild(lb);
}

// ---------- live updates ----------

function connect() {
  if (state.events) state.events.close();
  const es = new EventSource(`/api/events?user=${encodeURIComponent(state.me)}&channel=${encodeURIComponent(state.channel)}` +
                             `&token=${encodeURIComponent(TOKEN)}`);
  state.events = es;
  const conn = $("conn");
  let broken = false;  // after a lost connection, reload everything: events sent meanwhile were missed
  es.onopen = () => {
    if (broken) { load().catch(() => {}); return; }
    conn.textContent = ui("live", "live"); conn.className = "conn live";
  };
  es.onerror = () => { broken = true; conn.textContent = ui("reconnecting", "reconnecting…"); conn.className = "conn down"; };
  es.addEventListener("message", (e) => upsertMessage(JSON.parse(e.data)));
  es.addEventListener("delete", (e) => removeMessage(JSON.parse(e.data).id));
  es.addEventListener("queue", (e) => renderQueue(JSON.parse(e.data).jobs));
  es.addEventListener("commands", (e) => { state.commands = JSON.parse(e.data).commands; renderHelp(); });
  es.addEventListener("notice", (e) => { const d = JSON.parse(e.data); systemMessage(d.text, d.error); });
  es.addEventListener("reset", () => load());  // the server asks for a full reload (e.g. after reconnecting)
}

// The channels in the sidebar; an age-restricted one (Discord's nsfw flag) carries its tag, as in Discord.
function renderChannels() {
  $("channel-list").innerHTML = state.channels.map((c) =>
    `<div class="channel${c.id === state.channel ? " active" : ""}" data-channel="${esc(c.id)}"` +
    `${c.nsfw ? ' title="Age-restricted channel"' : ""}><span class="hash">#</span><span>${esc(c.name)}</span>` +
    `${c.nsfw ? '<span class="nsfw-tag">NSFW</span>' : ""}</div>`).join("");
}

async function load() {
  let s;
  const query = () => {
    const q = [];
    if (state.me) q.push(`user=${encodeURIComponent(state.me)}`);
    if (state.channel) q.push(`channel=${encodeURIComponent(state.channel)}`);
    return q.length ? "?" + q.join("&") : "";
  };
  try {
    s = await api("/api/state" + query());
  } catch (e) {
    if (!state.me && !state.channel) throw e;
    state.me = state.channel = null;  // a member or channel of an earlier run of the playground: the defaults
    s = await api("/api/state");
  }
  state.me = String(s.me);
  state.channel = String(s.channel.id);
  state.channels = s.channels || [s.channel];
  try { localStorage.setItem("playground-member", state.me); } catch (e) { /* storage disabled */ }
  applyUi(s.ui, s.lang);
  state.members = s.members;
  state.byId = Object.fromEntries(s.members.map((m) => [String(m.id), m]));
  state.commands = s.commands;
  state.examples = s.examples || [];
  state.pictures = s.pictures || [];
  $("guild-name").textContent = s.guild.name;
  $("guild-icon").textContent = s.guild.name[0].toUpperCase();
  $("guild-icon").title = s.guild.name;
  $("channel-name").textContent = s.channel.name;
  renderChannels();
  $("command-input").placeholder = `Message #${s.channel.name}` + (state.examples.length ? ` — try ${state.examples[0]}` : "");
  const banner = $("banner");
  if (s.banner) { banner.innerHTML = markdown(s.banner); banner.hidden = false; } else banner.hidden = true;
  document.title = `#${s.channel.name} · ${s.guild.name} · morph bot`;
  renderMembers();
  renderHelp();
  renderQueue(s.queue || []);
  $("messages").innerHTML = "";
  state.messages.clear();
  for (const m of s.messages) upsertMessage(m);
  scrollDown();
  connect();
}

function init() {
  const input = $("command-input");
  $("command-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value;
    input.value = "";
    $("autocomplete").hidden = true;
    sendCommand(text);
  });
  input.addEventListener("input", () => { state.acIndex = 0; updateAutocomplete(); });
  input.addEventListener("keydown", (ev) => {
    const box = $("autocomplete");
    if (!box.hidden && state.acRows.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        state.acIndex = (state.acIndex + (ev.key === "ArrowDown" ? 1 : -1) + state.acRows.length) % state.acRows.length;
        updateAutocomplete();
        return;
      }
      if (ev.key === "Tab") { ev.preventDefault(); completeWith(state.acRows[state.acIndex]); return; }
      if (ev.key === "Escape") { box.hidden = true; return; }
    } else if (ev.key === "ArrowUp" && state.history.length) {
      ev.preventDefault();
      state.histPos = Math.min(state.histPos + 1, state.history.length - 1);
      input.value = state.history[state.histPos];
    } else if (ev.key === "ArrowDown" && state.histPos >= 0) {
      ev.preventDefault();
      state.histPos -= 1;
      input.value = state.histPos >= 0 ? state.history[state.histPos] : "";
    }
  });
  $("autocomplete").addEventListener("mousedown", (ev) => {
    const row = ev.target.closest("[data-ac]");
    if (row) { ev.preventDefault(); completeWith(state.acRows[Number(row.dataset.ac)]); }
  });
  $("help").addEventListener("click", (ev) => {
    const picture = ev.target.closest("[data-picture]");
    if (picture) { addPicture(picture.dataset.picture).catch((e) => systemMessage(e.message, true)); return; }
    const example = ev.target.closest("[data-example]");
    if (example) { $("command-input").value = example.dataset.example; $("command-input").focus(); return; }
    const row = ev.target.closest("[data-usage]");
    if (row) completeWith({ usage: row.dataset.usage });
  });
  $("file-input").addEventListener("change", async (ev) => {
    for (const f of [...ev.target.files]) await addFile(f, f.name);
    ev.target.value = "";
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (ev) => { ev.preventDefault(); composer.classList.add("dropping"); });
  composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
  composer.addEventListener("drop", (ev) => onDrop(ev).catch((e) => systemMessage(e.message, true)));
  $("attachments").addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-remove-file]");
    if (!b) return;
    const [f] = state.files.splice(Number(b.dataset.removeFile), 1);
    URL.revokeObjectURL(f.url);
    renderAttachments();
  });
  $("messages").addEventListener("click", onMessagesClick);
  document.addEventListener("click", (ev) => { if (!ev.target.closest(".select")) closeSelect(); });
  $("member-switch").addEventListener("change", (ev) => { state.me = ev.target.value; load(); });
  $("channel-list").addEventListener("click", (ev) => {
    const link = ev.target.closest("[data-channel]");
    if (link && link.dataset.channel !== state.channel) { state.channel = link.dataset.channel; load(); }
  });
  try { state.me = localStorage.getItem("playground-member"); } catch (e) { /* storage disabled */ }
  load().catch((e) => systemMessage("Could not reach the playground server: " + e.message, true));
  setInterval(() => {  // the queue panel also refreshes on its own (positions change as jobs finish)
    api("/api/queue").then((q) => renderQueue(q.jobs)).catch(() => {});
  }, 3000);
}

document.addEventListener("DOMContentLoaded", init);
