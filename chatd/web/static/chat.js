// chatd's chat page.  It speaks the JSON protocol documented at the top of
// chatd/web/protocol.py over one WebSocket to /chat on the server that
// served it.  Everything users wrote is put on the page with textContent,
// never as HTML.
"use strict";

const RECONNECT_DELAYS = [1, 2, 4, 8, 15, 30]; // seconds, then 30 s each time
const MAX_LINES_PER_CHANNEL = 1000;

const state = {
  socket: null,
  nick: null,            // once logged in
  wantedNick: null,      // what to log in as again after a reconnect
  current: null,         // the channel shown
  channels: new Map(),   // name -> {name, topic, members: Set, lines: [li], unread, mention}
  rejoin: [],            // channels to join again after a reconnect
  attempt: 0,            // reconnects since the last success
  stayClosed: false,     // the server closed us for good (kicked, bye ...)
  server: "chatd",
};

const $ = (id) => document.getElementById(id);

// Over plain HTTP, the server says where the page is over TLS and the
// certificate's fingerprint: the login form links there, with the
// fingerprint to compare with what the browser shows.
function offerTLS(https) {
  const offer = $("login-tls");
  if (!https || location.protocol !== "http:" || !Number.isInteger(https.port)) {
    offer.hidden = true;
    return;
  }
  const url = `https://${location.hostname}:${https.port}/`;
  $("tls-link").href = url;
  $("tls-link").textContent = url;
  $("tls-fingerprint").textContent = String(https.fingerprint);
  offer.hidden = false;
}

// -- the connection

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/chat");
  state.socket = socket;
  state.stayClosed = false;
  setStatus(state.attempt ? "Reconnecting…" : "Connecting…", state.attempt > 0);
  socket.onmessage = (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch (error) { return; }
    receive(data);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (state.nick) {
      state.wantedNick = state.nick;
      state.rejoin = [...state.channels.keys()];
    }
    state.nick = null;
    if (state.stayClosed) return;
    const delay = RECONNECT_DELAYS[Math.min(state.attempt, RECONNECT_DELAYS.length - 1)];
    state.attempt += 1;
    countDown(delay);
  };
}

function countDown(seconds) {
  if (seconds <= 0) { connect(); return; }
  setStatus(`Connection lost. Reconnecting in ${seconds} s…`, true);
  setTimeout(() => countDown(seconds - 1), 1000);
}

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(message));
    return true;
  }
  notice("Not connected; wait until the connection is back.", "error");
  return false;
}

function setStatus(text, trouble) {
  $("status").textContent = text;
  $("status").classList.toggle("trouble", Boolean(trouble));
}

// -- what the server says

function receive(data) {
  switch (data.type) {
    case "welcome":
      state.server = data.server;
      $("server").textContent = data.server;
      $("login-server").textContent = data.server;
      $("login-users").textContent = `${data.users} ${data.users === 1 ? "user" : "users"} online`;
      document.title = `chatd on ${data.server}`;
      offerTLS(data.https);
      if (state.wantedNick) {
        send({type: "login", nick: state.wantedNick});
      } else {
        showLogin();
      }
      setStatus("Connected");
      break;
    case "logged-in":
      state.attempt = 0;
      state.nick = data.nick;
      state.wantedNick = data.nick;
      showChat();
      openChannel(data.channel, "", data.history);
      for (const name of state.rejoin) {  // after a reconnect: the channels one was in
        if (name !== data.channel) send({type: "join", channel: name});
      }
      state.rejoin = [];
      setStatus(`Connected as ${data.nick}`);
      break;
    case "events":
      for (const event of data.events) happened(event, false);
      break;
    case "channel-joined":
      openChannel(data.channel, data.topic, data.history);
      break;
    case "now-talking-in":
      show(data.channel);
      break;
    case "channel-parted":
      closeChannel(data.channel);
      if (data.current) show(data.current);
      else { state.current = null; render(); notice("You are in no channel now; join one on the left."); }
      break;
    case "members": {
      const channel = state.channels.get(data.channel);
      if (channel) { channel.members = new Set(data.nicks); if (channel.name === state.current) renderMembers(); }
      else notice(`${data.nicks.length} in ${data.channel}: ${data.nicks.join(", ")}`);
      break;
    }
    case "users":
      notice(`${data.nicks.length} ${data.nicks.length === 1 ? "user" : "users"} online: ${data.nicks.join(", ")}`);
      break;
    case "channels":
      listChannels(data.channels);
      break;
    case "topic": {
      const channel = state.channels.get(data.channel);
      if (channel) { channel.topic = data.topic; renderTopic(); }
      notice(data.topic ? `Topic of ${data.channel}: ${data.topic}` : `${data.channel} has no topic`);
      break;
    }
    case "private":
      add(state.current, line({kind: "private", nick: `*${data.sender}*`, text: data.text}), true);
      break;
    case "private-sent":
      add(state.current, line({kind: "private", nick: `→ *${data.to}*`, text: data.text}), false);
      break;
    case "operator": notice("You are now an operator."); break;
    case "kicked":
      state.stayClosed = true;
      closed(`You were kicked by ${data.by}` + (data.reason ? ` (${data.reason})` : ""));
      break;
    case "ban-added":
      notice(`Banned ${data.address} ` + (data.minutes ? `for ${data.minutes} minutes` : "until restart"));
      break;
    case "ban-lifted": notice(`Unbanned ${data.address}`); break;
    case "bans": notice(data.bans.length ? `Bans: ${data.bans.join(", ")}` : "No bans"); break;
    case "contact":
      notice(data.contact ? "Back in contact with the rest of the chat" +
                            (data.gap ? "; some of what was said elsewhere meanwhile is lost" : "")
                          : "Lost contact with the rest of the chat; retrying");
      break;
    case "bye":
      state.stayClosed = true;
      closed("You left the chat.");
      break;
    case "error":
      if (data.code === "banned") {  // the connection closes next: do not come back
        state.stayClosed = true;
        closed("You are banned from this server.");
        break;
      }
      if (!state.nick) {
        $("login-error").textContent = data.reason;
        showLogin();
      } else {
        notice(`Error: ${data.reason}`, "error");
      }
      break;
    case "closing":
      // After a shutdown the server may well come back: reconnect.
      if (data.code !== "shutting-down") state.stayClosed = true;
      closed(data.code === "shutting-down" ? "The server is shutting down." : `Disconnected: ${data.reason}.`);
      break;
  }
}

function closed(reason) {
  setStatus(reason, true);
  if (state.stayClosed) {
    state.wantedNick = null;
    notice(`${reason} Reload the page to come back.`, "error");
  } else {
    notice(reason, "error");
  }
}

// An event's fields after its kind and time, as the server sends them
// (chatd/web/render.py): ["said", 1795000000, "#lab", "alice", "hi"].
const EVENT_FIELDS = {
  said: ["channel", "nick", "text"],
  acted: ["channel", "nick", "text"],
  joined: ["channel", "nick", "count"],
  parted: ["channel", "nick", "reason", "count"],
  topic: ["channel", "nick", "topic"],
  crowd: ["channel", "joined", "left", "count", "joiners", "leavers"],
  renamed: ["old", "new"],
  left: ["nick", "reason"],
};

function eventObject([kind, seconds, ...values]) {
  const event = {event: kind, ts: seconds * 1000};
  (EVENT_FIELDS[kind] || []).forEach((name, index) => { event[name] = values[index]; });
  return event;
}

// One event, as it arrives or from a channel's history.
function happened(array, old) {
  const event = eventObject(array);
  const channel = event.channel && state.channels.get(event.channel);
  const time = event.ts;
  switch (event.event) {
    case "said":
    case "acted": {
      if (!channel) return;
      const mention = !old && mentions(event.text) && event.nick !== state.nick;
      const item = line({kind: event.event === "acted" ? "action" : "said", nick: event.nick, text: event.text, time,
                         mention, old});
      add(channel.name, item, !old, mention);
      break;
    }
    case "joined":
      if (!channel) return;
      channel.members.add(event.nick);
      add(channel.name, line({kind: "notice", text: `${event.nick} joined (${event.count})`, time}));
      break;
    case "parted":
      if (!channel) return;
      channel.members.delete(event.nick);
      add(channel.name, line({kind: "notice", text: `${event.nick} left` + (event.reason ? ` (${event.reason})` : ""),
                              time}));
      break;
    case "crowd":
      if (!channel) return;
      for (const nick of event.leavers || []) channel.members.delete(nick);
      for (const nick of event.joiners || []) channel.members.add(nick);
      add(channel.name, line({kind: "notice", text: `${event.joined} joined, ${event.left} left (${event.count})`, time}));
      break;
    case "topic":
      if (!channel) return;
      channel.topic = event.topic;
      add(channel.name, line({kind: "notice", time,
        text: event.topic ? `${event.nick} set the topic: ${event.topic}` : `${event.nick} cleared the topic`}));
      break;
    case "renamed":
      if (event.old === state.nick) {
        state.nick = state.wantedNick = event.new;
        setStatus(`Connected as ${event.new}`);
      }
      for (const each of state.channels.values()) {
        if (each.members.delete(event.old)) {
          each.members.add(event.new);
          add(each.name, line({kind: "notice", text: `${event.old} is now known as ${event.new}`, time}));
        }
      }
      break;
    case "left":
      for (const each of state.channels.values()) {
        if (each.members.delete(event.nick)) {
          add(each.name, line({kind: "notice", text: `${event.nick} left the chat (${event.reason})`, time}));
        }
      }
      break;
  }
  renderMembers();
  renderTopic();
}

function mentions(text) {
  if (!state.nick) return false;
  const escaped = state.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\p{L}\\p{N}_])${escaped}($|[^\\p{L}\\p{N}_])`, "iu").test(text);
}

// -- channels

function openChannel(name, topic, history) {
  let channel = state.channels.get(name);
  if (!channel) {
    channel = {name, topic, members: new Set(), lines: [], unread: 0, mention: false};
    state.channels.set(name, channel);
  }
  channel.topic = topic;
  if (channel.lines.length) {  // back after a reconnect: what was said meanwhile is in the history
    add(name, line({kind: "notice", text: "Reconnected. Recent messages:"}));
  }
  for (const event of history || []) happened(event, true);
  send({type: "names", channel: name});
  show(name);
}

function closeChannel(name) {
  state.channels.delete(name);
  if (state.current === name) state.current = null;
  render();
}

function show(name) {
  const channel = state.channels.get(name);
  if (!channel) return;
  state.current = name;
  channel.unread = 0;
  channel.mention = false;
  render();
}

// -- the page

function line({kind, nick, text, time, mention, old}) {
  const item = document.createElement("li");
  item.className = kind + (mention ? " mention" : "") + (old ? " history" : "");
  const stamp = document.createElement("span");
  stamp.className = "time";
  const when = time ? new Date(time) : new Date();
  stamp.textContent = when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  item.append(stamp);
  if (kind === "said" || kind === "private") {
    const who = document.createElement("span");
    who.className = "nick";
    who.textContent = kind === "said" ? `<${nick}>` : nick;
    item.append(who, " ", text);
  } else if (kind === "action") {
    item.append(`* ${nick} ${text}`);
  } else {
    item.append(text);
  }
  return item;
}

// Add a line to a channel's log (the current one when `name` is null).
function add(name, item, counts = false, mention = false) {
  const channel = state.channels.get(name || state.current);
  if (!channel) {
    if (!state.nick) return;
    $("messages").append(item);
    return;
  }
  channel.lines.push(item);
  if (channel.lines.length > MAX_LINES_PER_CHANNEL) channel.lines.shift().remove();
  if (channel.name === state.current) {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    if (atBottom) list.scrollTop = list.scrollHeight;
  } else if (counts) {
    channel.unread += 1;
    channel.mention = channel.mention || mention;
    renderChannels();
  }
}

function notice(text, kind = "notice") {
  add(null, line({kind, text}));
}

function render() {
  renderChannels();
  renderTopic();
  renderMembers();
  const list = $("messages");
  list.replaceChildren(...(state.current ? state.channels.get(state.current).lines : []));
  list.scrollTop = list.scrollHeight;
}

function renderChannels() {
  const items = [];
  let unread = 0;
  for (const channel of state.channels.values()) {
    const item = document.createElement("li");
    item.classList.toggle("current", channel.name === state.current);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = channel.name;
    open.addEventListener("click", () => { show(channel.name); $("say").focus(); });
    if (channel.unread) {
      const badge = document.createElement("span");
      badge.className = "unread" + (channel.mention ? " mention" : "");
      badge.textContent = channel.mention ? `@${channel.unread}` : String(channel.unread);
      open.append(" ", badge);
      unread += channel.unread;
    }
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "leave";
    leave.title = `Leave ${channel.name}`;
    leave.setAttribute("aria-label", `Leave ${channel.name}`);
    leave.textContent = "×";
    leave.addEventListener("click", () => send({type: "part", channel: channel.name}));
    item.append(open, leave);
    items.push(item);
  }
  $("channel-list").replaceChildren(...items);
  document.title = (unread ? `(${unread}) ` : "") + `chatd on ${state.server}`;
}

function renderTopic() {
  const channel = state.current && state.channels.get(state.current);
  $("channel-name").textContent = channel ? channel.name : "";
  $("topic-text").textContent = channel ? channel.topic : "";
}

function renderMembers() {
  const channel = state.current && state.channels.get(state.current);
  const nicks = channel ? [...channel.members].sort((a, b) => a.localeCompare(b, undefined, {sensitivity: "base"})) : [];
  $("member-count").textContent = channel ? `${nicks.length} in ${channel.name}` : "";
  $("member-list").replaceChildren(...nicks.map((nick) => {
    const item = document.createElement("li");
    item.textContent = nick;
    item.classList.toggle("me", nick === state.nick);
    return item;
  }));
}

function listChannels(channels) {
  const item = document.createElement("li");
  item.className = "notice";
  item.append(`${channels.length} ${channels.length === 1 ? "channel" : "channels"}: `);
  channels.forEach((info, index) => {
    const join = document.createElement("button");
    join.type = "button";
    join.className = "channel-button";
    join.textContent = `${info.name} (${info.count})`;
    join.title = info.topic || `Join ${info.name}`;
    join.addEventListener("click", () => send({type: "join", channel: info.name}));
    item.append(index ? ", " : "", join);
  });
  add(null, item);
}

function showLogin() {
  $("login").hidden = false;
  $("chat").hidden = true;
  $("show-members").hidden = true;
  $("nick").focus();
}

function showChat() {
  $("login").hidden = true;
  $("chat").hidden = false;
  $("show-members").hidden = false;
  $("login-error").textContent = "";
  $("say").focus();
}

// -- what the user types: a message, or a command as on telnet

const HELP = [
  "/join #NAME  join or create a channel, and talk there",
  "/part [#NAME] [REASON]  leave a channel",
  "/me TEXT  an action;  /msg NICK TEXT  a private message",
  "/nick NAME  rename;  /topic [TEXT]  show or set the topic (/topic - clears it)",
  "/list [#NAME]  who is online, or in a channel;  /channels  every channel",
  "/quit [REASON]  leave the chat",
  "Operators: /oper PASSWORD, /kick NICK [REASON], /ban NICK|ADDRESS [MINUTES], /unban ADDRESS, /bans",
];

function command(text) {
  if (!text.startsWith("/") || text.startsWith("//")) {
    return {type: "say", text: text.startsWith("//") ? text.slice(1) : text, channel: state.current || undefined};
  }
  const [word, ...rest] = text.slice(1).split(" ");
  const argument = rest.join(" ").trim();
  const first = argument.split(" ")[0];
  const after = argument.slice(first.length).trim();
  switch (word.toLowerCase()) {
    case "join": case "j": return first ? {type: "join", channel: first} : usage("/join #NAME");
    case "part": case "leave":
      return {type: "part", channel: first || state.current || undefined, reason: after};
    case "me": return argument ? {type: "act", text: argument, channel: state.current || undefined} : usage("/me TEXT");
    case "msg": case "m": return first && after ? {type: "msg", to: first, text: after} : usage("/msg NICK TEXT");
    case "nick": return first ? {type: "nick", nick: first} : usage("/nick NAME");
    case "topic":
      if (!argument) return {type: "topic", channel: state.current || undefined};
      return {type: "topic", channel: state.current || undefined, topic: argument === "-" ? "" : argument};
    case "list": case "names": case "who":
      return first ? {type: "names", channel: first} : {type: "names"};
    case "channels": case "rooms": return {type: "channels"};
    case "quit": case "exit": return {type: "quit", reason: argument || undefined};
    case "oper": return first ? {type: "oper", password: argument} : usage("/oper PASSWORD");
    case "kick": return first ? {type: "kick", nick: first, reason: after} : usage("/kick NICK [REASON]");
    case "ban": {
      if (!first || (after && !/^\d+$/.test(after))) return usage("/ban NICK|ADDRESS [MINUTES]");
      return after ? {type: "ban", target: first, minutes: Number(after)} : {type: "ban", target: first};
    }
    case "unban": return first ? {type: "unban", address: first} : usage("/unban ADDRESS");
    case "bans": return {type: "bans"};
    case "help": case "?":
      for (const help of HELP) notice(help);
      return null;
    default:
      notice(`Unknown command /${word}; /help lists them.`, "error");
      return null;
  }
}

function usage(text) {
  notice(`Usage: ${text}`, "error");
  return null;
}

// -- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) return;
    $("login-error").textContent = "";
    send({type: "login", nick});
  });
  $("say-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = $("say").value;
    if (!text.trim()) return;
    const message = command(text);
    if (message === null || send(message)) $("say").value = "";
    if (message && (message.type === "say" || message.type === "act") && state.socket) {
      // The server sends the others what one says, not oneself: it goes on the page here.
      add(message.channel, line({kind: message.type === "act" ? "action" : "said", nick: state.nick, text: message.text}));
    }
  });
  $("join-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const name = $("join-name").value.trim();
    if (name && send({type: "join", channel: name})) $("join-name").value = "";
  });
  $("browse").addEventListener("click", () => send({type: "channels"}));
  $("show-members").addEventListener("click", () => $("members").classList.toggle("open"));
  connect();
});
