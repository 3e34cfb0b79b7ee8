// chatd's chat page.  It speaks the JSON protocol documented at the top of
// chatd/web/protocol.py over one WebSocket to /chat on the server that
// served it.  Everything users wrote is put on the page with textContent,
// never as HTML; the one exception is a link (http or https only), which
// becomes an <a> whose href the browser's URL parser checked, opening a new
// tab with rel="noopener noreferrer".  A registered nickname's password is
// kept in this tab's memory only (to log in again after a reconnect), never
// in the browser's storage.
"use strict";

const RECONNECT_DELAYS = [1, 2, 4, 8, 15, 30]; // seconds, then 30 s each time
const MAX_LINES_PER_CHANNEL = 1000;

const state = {
  socket: null,
  nick: null,            // once logged in
  wantedNick: null,      // what to log in as again after a reconnect
  current: null,         // the channel shown
  channels: new Map(),   // name -> {name, topic, members: Set, ranks: Map(nick -> "@" "+" "@+"), lines: [li], ...}
  keys: new Map(),       // channel -> the key it was joined with (+k), to join it again after a reconnect
  away: new Map(),       // nick -> why they are away, for those who share a channel with this user
  rejoin: [],            // channels to join again after a reconnect
  attempt: 0,            // reconnects since the last success
  stayClosed: false,     // the server closed us for good (kicked, bye ...)
  server: "chatd",
  accounts: false,       // whether nicknames can be registered on this server
  identified: false,     // logged in to a registered nickname with its password
  password: null,        // that password, in memory, for reconnecting
  pendingPassword: null, // a password sent, until the server says it is the one
  unreadAtLogin: new Map(), // channel -> lines said since last read (other devices too), until it opens
  readTimers: new Map(), // channel -> the timer that tells the server it was read
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
      state.accounts = Boolean(data.accounts);
      if (state.wantedNick) {
        const login = {type: "login", nick: state.wantedNick};
        if (state.password) { login.password = state.password; state.pendingPassword = state.password; }
        send(login);
      } else {
        showLogin();
      }
      setStatus("Connected");
      break;
    case "logged-in":
      state.attempt = 0;
      state.nick = data.nick;
      state.wantedNick = data.nick;
      state.identified = Boolean(data.account);
      state.password = state.identified ? state.pendingPassword || state.password : null;
      state.pendingPassword = null;
      $("password-row").hidden = true;
      $("password").value = "";
      showChat();
      renderAccount();
      openChannel(data.channel, "", data.history, data.oldest);
      for (const name of state.rejoin) {  // after a reconnect: the channels one was in
        if (name !== data.channel) send({type: "join", channel: name, key: state.keys.get(name)});
      }
      state.rejoin = [];
      setStatus(`Connected as ${data.nick}`);
      break;
    case "events":
      for (const event of data.events) happened(event, false);
      break;
    case "channel-joined":
      openChannel(data.channel, data.topic, data.history, data.oldest);
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
      if (channel) { setMembers(channel, data.nicks); if (channel.name === state.current) renderMembers(); }
      else notice(`${data.nicks.length} in ${data.channel}: ${data.nicks.join(", ")}`);
      break;
    }
    case "modes":
      notice(`Modes of ${data.channel}: ${[data.modes, ...data.arguments].join(" ")}`);
      break;
    case "masks": {
      const what = {b: "bans", e: "exceptions", I: "invite exceptions"}[data.list] || "masks";
      notice(data.entries.length ? `${what[0].toUpperCase()}${what.slice(1)} of ${data.channel}: `
        + data.entries.map((entry) => `${entry.mask} (${entry.by})`).join(", ") : `${data.channel} has no ${what}`);
      break;
    }
    case "inviting": notice(`You invited ${data.nick} into ${data.channel}`); break;
    case "motd": for (const text of data.lines) notice(text); break;
    case "away": notice(data.away ? "You are marked away" : "You are back"); break;
    case "is-away": notice(`${data.nick} is away: ${data.text}`); break;
    case "whois": {
      const parts = [data.nick + (data.realname ? ` (${data.realname})` : ""),
                     data.channels.length ? `in ${data.channels.join(" ")}` : "in no channel"];
      if (data.node) parts.push(`on ${data.node}`);
      if (data.away) parts.push(`away: ${data.away}`);
      if (!data.node) parts.push(`idle ${Math.floor(data.idle / 60)} min, on since ${new Date(data.signon * 1000).toLocaleString()}`);
      if (data.account) parts.push("identified");
      if (data.operator) parts.push("an operator of the server");
      notice(parts.join("; "));
      break;
    }
    case "invited": offerJoin(`${data.by} invites you into ${data.channel}: `, data.channel); break;
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
      add(state.current, line({kind: "private", nick: data.notice ? `-${data.sender}-` : `*${data.sender}*`,
                               text: data.text}), true);
      notify(`${data.sender} (private)`, data.text);
      break;
    case "private-sent":
      add(state.current, line({kind: "private", nick: `→ *${data.to}*`, text: data.text}), false);
      break;
    case "password-wanted":
      state.password = state.pendingPassword = null;
      $("password-label").textContent = `${data.nick} is registered: its password`;
      $("password-row").hidden = false;
      $("password").value = "";
      showLogin();
      $("password").focus();
      break;
    case "identified":
      state.identified = true;
      state.password = state.pendingPassword || state.password;
      notice(`You are identified as ${data.nick}.`);
      renderAccount();
      break;
    case "registered":
      state.identified = true;
      state.password = state.pendingPassword;
      notice(`${data.nick} is registered to you now: from now on, choosing it asks for your password.`);
      renderAccount();
      break;
    case "password-changed":
      state.password = state.pendingPassword;
      notice(`Your password for ${data.nick} is changed.`);
      break;
    case "unregistered":
      state.identified = false;
      state.password = null;
      notice(`${data.nick} is not registered any more.`);
      renderAccount();
      break;
    case "note-kept":
      notice(`${data.to} is away; they get your message when they log in.`);
      break;
    case "notes":
      notice(`${data.notes.length} ${data.notes.length === 1 ? "message" : "messages"} while you were away:`);
      for (const note of data.notes) {
        add(null, line({kind: "private", nick: `*${note.sender}*`, text: note.text, time: note.at * 1000, day: true}));
      }
      break;
    case "mentions-while-away":
      for (const [channel, count] of data.counts) {
        notice(`You were mentioned ${count === 1 ? "once" : `${count} times`} in ${channel} since you left ` +
               "(/mentions lists them).");
      }
      break;
    case "mentions":
      if (!data.events.length) { notice("No mentions since you left."); break; }
      for (const array of data.events) {
        const event = eventObject(array);
        add(null, line({kind: event.event === "acted" ? "action" : "said", nick: event.nick, text: event.text,
                        time: event.ts, day: true, where: event.channel}));
      }
      break;
    case "unread": {
      const elsewhere = [];
      for (const [name, count] of Object.entries(data.counts)) {
        const channel = state.channels.get(name);
        if (channel && name !== state.current) { channel.unread += count; renderChannels(); }
        else if (!channel) { state.unreadAtLogin.set(name, count); elsewhere.push({name, count}); }
      }
      if (elsewhere.length) unreadElsewhere(elsewhere);
      break;
    }
    case "history":
      older(data.channel, data.events, data.oldest);
      break;
    case "history-kept":
      notice(data.kept ? "History is saved again."
                       : "History is not being saved: the server cannot write its store (what is said still " +
                         "reaches everyone online).", data.kept ? "notice" : "error");
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
      if (data.code === "bad-channel-key" && data.subject) {
        askKey(data.subject, data.reason);
        break;
      }
      if (data.code === "banned") {  // the connection closes next: do not come back
        state.stayClosed = true;
        closed("You are banned from this server.");
        break;
      }
      if (!state.nick) {
        $("login-error").textContent = data.reason;
        state.pendingPassword = null;
        $("password").value = "";
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
  noticed: ["channel", "nick", "text"],
  joined: ["channel", "nick", "count", "rank", "away"],
  parted: ["channel", "nick", "reason", "count"],
  topic: ["channel", "nick", "topic"],
  mode: ["channel", "nick", "changes"],
  kicked: ["channel", "nick", "by", "reason", "count"],
  invited: ["channel", "nick", "by"],
  crowd: ["channel", "joined", "left", "count", "joiners", "leavers"],
  renamed: ["old", "new"],
  away: ["nick", "text"],
  realname: ["nick", "realname"],
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
    case "acted":
    case "noticed": {
      if (!channel) return;
      const mention = !old && mentions(event.text) && event.nick !== state.nick;
      const kind = {acted: "action", noticed: "notice-from"}[event.event] || "said";
      const item = line({kind, nick: event.event === "noticed" ? `-${event.nick}-` : event.nick, text: event.text,
                         time, mention, old});
      add(channel.name, item, !old, mention);
      if (mention) notify(`${event.nick} in ${channel.name}`, event.text);
      break;
    }
    case "joined":
      if (!channel) return;
      channel.members.add(event.nick);
      if (event.rank) channel.ranks.set(event.nick, event.rank);
      if (event.away) state.away.set(event.nick, event.away);
      add(channel.name, line({kind: "notice", text: `${event.nick} joined (${event.count})`, time}));
      break;
    case "parted":
      if (!channel) return;
      channel.members.delete(event.nick);
      channel.ranks.delete(event.nick);
      add(channel.name, line({kind: "notice", text: `${event.nick} left` + (event.reason ? ` (${event.reason})` : ""),
                              time}));
      break;
    case "crowd":
      if (!channel) return;
      for (const nick of event.leavers || []) channel.members.delete(nick);
      for (const nick of event.joiners || []) channel.members.add(nick);
      add(channel.name, line({kind: "notice", text: `${event.joined} joined, ${event.left} left (${event.count})`, time}));
      break;
    case "mode": {
      if (!channel) return;
      for (const [change, argument] of event.changes) {
        const rank = {o: "@", v: "+"}[change[1]];
        if (!rank) continue;
        const had = channel.ranks.get(argument) || "";
        const now = change[0] === "+" ? (had.includes(rank) ? had : (rank === "@" ? "@" + had : had + "+"))
                                      : had.replace(rank, "");
        if (now) channel.ranks.set(argument, now); else channel.ranks.delete(argument);
      }
      const words = spelt(event.changes);
      add(channel.name, line({kind: "notice", text: `${event.nick} sets mode ${words}`, time}));
      break;
    }
    case "kicked":
      if (!channel) return;
      channel.members.delete(event.nick);
      channel.ranks.delete(event.nick);
      add(channel.name, line({kind: "notice", time,
        text: `${event.nick} was kicked by ${event.by}` + (event.reason ? ` (${event.reason})` : "")}));
      if (event.nick === state.nick) {  // out of it: the latest other channel shows, and says why
        closeChannel(channel.name);
        const latest = [...state.channels.keys()].pop();
        if (latest) show(latest);
        notice(`You were kicked from ${channel.name} by ${event.by}` + (event.reason ? ` (${event.reason})` : ""),
               "error");
      }
      break;
    case "invited":
      if (!channel) return;
      add(channel.name, line({kind: "notice", text: `${event.by} invited ${event.nick}`, time}));
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
          if (each.ranks.has(event.old)) { each.ranks.set(event.new, each.ranks.get(event.old)); each.ranks.delete(event.old); }
          add(each.name, line({kind: "notice", text: `${event.old} is now known as ${event.new}`, time}));
        }
      }
      break;
    case "away":
      if (event.text) state.away.set(event.nick, event.text); else state.away.delete(event.nick);
      break;
    case "left":
      state.away.delete(event.nick);
      for (const each of state.channels.values()) {
        if (each.members.delete(event.nick)) {
          each.ranks.delete(event.nick);
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

// `oldest`: the exact time of the history's first line, from which older ones are asked for.
function openChannel(name, topic, history, oldest) {
  let channel = state.channels.get(name);
  if (!channel) {
    channel = {name, topic, members: new Set(), ranks: new Map(), lines: [], unread: 0, mention: false, oldest: null,
               loading: false, complete: false};
    state.channels.set(name, channel);
  }
  if (oldest) channel.oldest = oldest;
  const unread = state.unreadAtLogin.get(name);
  state.unreadAtLogin.delete(name);
  channel.topic = topic;
  if (channel.lines.length) {  // back after a reconnect: what was said meanwhile is in the history
    add(name, line({kind: "notice", text: "Reconnected. Recent messages:"}));
  }
  for (const event of history || []) happened(event, true);
  send({type: "names", channel: name});
  show(name);
  if (unread) {
    notice(`${unread} ${unread === 1 ? "line was" : "lines were"} said here since you last read it; scroll up for them.`);
  }
}

// Older lines of a channel, from the server's store, put above what it shows.
function older(name, events, oldest) {
  const channel = state.channels.get(name);
  if (!channel) return;
  channel.loading = false;
  if (oldest) channel.oldest = oldest;
  const items = [];
  for (const array of events) {
    const event = eventObject(array);
    if (event.event !== "said" && event.event !== "acted" && event.event !== "topic") continue;
    items.push(event.event === "topic"
      ? line({kind: "notice", time: event.ts, day: true, old: true, text: `${event.nick} set the topic: ${event.topic}`})
      : line({kind: event.event === "acted" ? "action" : "said", nick: event.nick, text: event.text, time: event.ts,
              day: true, old: true}));
  }
  if (!items.length || channel.lines.length + items.length > MAX_LINES_PER_CHANNEL) channel.complete = true;
  channel.lines.unshift(...items.slice(Math.max(0, items.length - (MAX_LINES_PER_CHANNEL - channel.lines.length))));
  if (channel.name === state.current) {
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    list.prepend(...items);
    list.scrollTop = list.scrollHeight - fromBottom;  // what was on screen stays where it was
  }
}

// The user scrolled to the top of a channel: its older lines, once each.
function loadOlder() {
  const channel = state.current && state.channels.get(state.current);
  if (!channel || channel.loading || channel.complete || !state.nick) return;
  channel.loading = true;
  send({type: "history", channel: channel.name, count: 50, before: channel.oldest || Date.now() / 1000});
}

// An identified user's reading of the channel shown, a moment after, for their unread counts on other devices.
function markRead(name) {
  if (!state.identified || !name || document.hidden || state.readTimers.has(name)) return;
  state.readTimers.set(name, setTimeout(() => {
    state.readTimers.delete(name);
    if (state.current === name && !document.hidden && state.nick) send({type: "read", channel: name});
  }, 2000));
}

function closeChannel(name) {
  state.channels.delete(name);
  state.keys.delete(name);
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
  markRead(name);
}

// -- the page

// `day`: the time may be days ago, so the date is shown too; `where`: the channel, for a line shown elsewhere.
function line({kind, nick, text, time, mention, old, day, where}) {
  const item = document.createElement("li");
  item.className = kind + (mention ? " mention" : "") + (old ? " history" : "");
  const stamp = document.createElement("span");
  stamp.className = "time";
  const when = time ? new Date(time) : new Date();
  stamp.textContent = day ? when.toLocaleString([], {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"})
                          : when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  item.append(stamp);
  if (where) item.append(`${where} `);
  if (kind === "said" || kind === "private" || kind === "notice-from") {
    const who = document.createElement("span");
    who.className = "nick";
    who.textContent = kind === "said" ? `<${nick}>` : nick;
    item.append(who, " ", ...withLinks(text));
  } else if (kind === "action") {
    item.append(`* ${nick} `, ...withLinks(text));
  } else {
    item.append(text);
  }
  return item;
}

// http and https addresses in a message, as links; everything else stays text.  Punctuation that ends a
// sentence is not part of the address; anything the browser's URL parser does not take stays text.
const LINK = /\bhttps?:\/\/[^\s<>"]+/gi;

function withLinks(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    const address = match[0].replace(/[.,;:!?')\]}]+$/, "");
    let url = null;
    try { url = new URL(address); } catch (error) { url = null; }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    parts.push(text.slice(last, match.index));
    const link = document.createElement("a");
    link.href = url.href;
    link.textContent = address;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    parts.push(link);
    last = match.index + address.length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}

// A browser notification (if the user allowed them with the bell) while the tab is hidden.
function notify(title, body) {
  if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
  new Notification(title, {body, tag: `chatd-${title}`});
}

function renderBell() {
  const bell = $("bell");
  bell.hidden = !("Notification" in window) || !state.nick;
  if (bell.hidden) return;
  const permission = Notification.permission;
  bell.textContent = permission === "granted" ? "Notifications on"
    : permission === "denied" ? "Notifications blocked" : "Notifications off";
  bell.disabled = permission !== "default";
}

// The offer to register the nickname, for a user who has not.
function renderAccount() {
  $("register-form").hidden = !(state.accounts && state.nick && !state.identified);
  $("register-nick").textContent = state.nick || "";
  $("register-plain").hidden = location.protocol !== "http:";
  renderBell();
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
    if (counts) markRead(channel.name);
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

// Operators first, then voiced members, then the rest, each by name; each shown after its rank, as IRC clients do.
function renderMembers() {
  const channel = state.current && state.channels.get(state.current);
  const order = (nick) => ({"@": 0, "+": 1}[(channel.ranks.get(nick) || "_")[0]] ?? 2);
  const nicks = channel ? [...channel.members].sort((a, b) => order(a) - order(b)
                                                    || a.localeCompare(b, undefined, {sensitivity: "base"})) : [];
  $("member-count").textContent = channel ? `${nicks.length} in ${channel.name}` : "";
  $("member-list").replaceChildren(...nicks.map((nick) => {
    const item = document.createElement("li");
    item.textContent = (channel.ranks.get(nick) || "")[0] ? channel.ranks.get(nick)[0] + nick : nick;
    item.classList.toggle("me", nick === state.nick);
    item.classList.toggle("operator", (channel.ranks.get(nick) || "").includes("@"));
    item.classList.toggle("away", state.away.has(nick));
    if (state.away.has(nick)) item.title = `away: ${state.away.get(nick)}`;
    return item;
  }));
}

// A channel's members as the server lists them, each after its rank: "@alice", "+bob", "carol".
function setMembers(channel, listed) {
  channel.members = new Set();
  channel.ranks = new Map();
  for (const entry of listed) {
    const rank = entry.match(/^[@+]*/)[0];
    const nick = entry.slice(rank.length);
    channel.members.add(nick);
    if (rank) channel.ranks.set(nick, rank);
  }
}

// Changes as IRC writes them: [["+o", "bob"], ["+t", ""]] -> "+ot bob".
function spelt(changes) {
  let letters = "", sign = "";
  const words = [];
  for (const [change, argument] of changes) {
    if (change[0] !== sign) { sign = change[0]; letters += sign; }
    letters += change[1];
    if (argument) words.push(argument);
  }
  return [letters, ...words].join(" ");
}

// A channel with a key (+k): the user types it here, and joins.
function askKey(name, reason) {
  const item = document.createElement("li");
  item.className = "notice key-form";
  const form = document.createElement("form");
  const input = document.createElement("input");
  input.type = "password";
  input.placeholder = "key";
  input.setAttribute("aria-label", `Key of ${name}`);
  const join = document.createElement("button");
  join.type = "submit";
  join.textContent = `Join ${name}`;
  form.append(`${reason}. Key: `, input, " ", join);
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (!input.value) return;
    state.keys.set(name, input.value);
    send({type: "join", channel: name, key: input.value});
    item.remove();
  });
  item.append(form);
  add(null, item);
  input.focus();
}

// A notice with a button that joins `name`.
function offerJoin(text, name) {
  const item = document.createElement("li");
  item.className = "notice";
  const join = document.createElement("button");
  join.type = "button";
  join.className = "channel-button";
  join.textContent = `Join ${name}`;
  join.addEventListener("click", () => send({type: "join", channel: name}));
  item.append(text, join);
  add(null, item);
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

// Channels with lines unread since this user last read them (here or on another device), to join.
function unreadElsewhere(channels) {
  const item = document.createElement("li");
  item.className = "notice unread-elsewhere";
  item.append("Unread since you last read them: ");
  channels.forEach(({name, count}, index) => {
    const join = document.createElement("button");
    join.type = "button";
    join.className = "channel-button";
    join.textContent = `${name} (${count})`;
    join.addEventListener("click", () => send({type: "join", channel: name}));
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
  "/history [N]  older lines of this channel (or scroll up);  /mentions  the lines that named you while away",
  "/register PASSWORD  keep your nickname;  /identify PASSWORD;  /password OLD NEW;  /unregister PASSWORD",
  "/join #NAME KEY  a channel with a key;  /invite NICK [#NAME]  invite someone in",
  "/away [TEXT]  mark yourself away (or back);  /whois NICK  what there is to know of NICK",
  "Channel operators (@): /mode [#NAME] [+k KEY|+l N|+i|+m|+s|+t ...], /op NICK, /deop NICK, /voice NICK, /devoice NICK,"
    + " /kick #NAME NICK [REASON], /ban #NAME MASK, /unban #NAME MASK, /bans #NAME",
  "Server operators: /oper PASSWORD, /kick NICK [REASON], /ban NICK|ADDRESS [MINUTES], /unban ADDRESS, /bans",
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
    case "join": case "j":
      if (!first) return usage("/join #NAME [KEY]");
      if (after) state.keys.set(first.startsWith("#") ? first : `#${first}`, after);
      return after ? {type: "join", channel: first, key: after} : {type: "join", channel: first};
    case "mode": {
      const [channel, words] = channelFirst(argument);
      return {type: "mode", channel, words};
    }
    case "op": case "deop": case "voice": case "devoice": {
      const [channel, nicks] = channelFirst(argument);
      if (!nicks.length) return usage(`/${word.toLowerCase()} [#NAME] NICK ...`);
      const [sign, letter] = {op: "+o", deop: "-o", voice: "+v", devoice: "-v"}[word.toLowerCase()];
      return {type: "mode", channel, words: [sign + letter.repeat(nicks.length), ...nicks]};
    }
    case "away": return {type: "away", text: argument};
    case "whois": return first ? {type: "whois", nick: first} : usage("/whois NICK");
    case "invite":
      return first ? {type: "invite", nick: first, channel: after || state.current || undefined}
                   : usage("/invite NICK [#NAME]");
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
    case "kick":
      if (first.startsWith("#")) {  // a channel's operator: out of that channel
        const [nick, ...reason] = after.split(" ");
        return nick ? {type: "kick", channel: first, nick, reason: reason.join(" ").trim()}
                    : usage("/kick #NAME NICK [REASON]");
      }
      return first ? {type: "kick", nick: first, reason: after} : usage("/kick NICK [REASON]");
    case "ban": case "unban": {
      const unban = word.toLowerCase() === "unban";
      if (first.startsWith("#")) {  // a channel's operator: a mask in that channel's bans
        return after ? {type: "mode", channel: first, words: [unban ? "-b" : "+b", after]}
                     : usage(`/${unban ? "unban" : "ban"} #NAME MASK`);
      }
      if (unban) return first ? {type: "unban", address: first} : usage("/unban ADDRESS");
      if (!first || (after && !/^\d+$/.test(after))) return usage("/ban NICK|ADDRESS [MINUTES]");
      return after ? {type: "ban", target: first, minutes: Number(after)} : {type: "ban", target: first};
    }
    case "bans": return first.startsWith("#") ? {type: "mode", channel: first, words: ["b"]} : {type: "bans"};
    case "register":
      if (!argument) return usage("/register PASSWORD");
      state.pendingPassword = argument;
      return {type: "register", password: argument};
    case "identify":
      if (!argument) return usage("/identify PASSWORD");
      state.pendingPassword = argument;
      return {type: "identify", password: argument};
    case "password":
      if (!first || !after) return usage("/password OLD NEW");
      state.pendingPassword = after;
      return {type: "password", old: first, new: after};
    case "unregister": return argument ? {type: "unregister", password: argument} : usage("/unregister PASSWORD");
    case "history": {
      if (argument && !/^\d+$/.test(argument)) return usage("/history [N]");
      const channel = state.current && state.channels.get(state.current);
      const before = channel && channel.oldest ? channel.oldest : undefined;
      if (channel) channel.loading = true;
      return {type: "history", channel: state.current || undefined, count: Number(argument || 50), before};
    }
    case "mentions": return {type: "mentions"};
    case "help": case "?":
      for (const help of HELP) notice(help);
      return null;
    default:
      notice(`Unknown command /${word}; /help lists them.`, "error");
      return null;
  }
}

// "#lab +k key" -> ["#lab", ["+k", "key"]]; without a channel first, the current one.
function channelFirst(argument) {
  const words = argument.split(" ").filter((word) => word);
  if (words.length && words[0].startsWith("#")) return [words[0], words.slice(1)];
  return [state.current || undefined, words];
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
    const login = {type: "login", nick};
    const password = $("password-row").hidden ? "" : $("password").value;
    if (password) { login.password = password; state.pendingPassword = password; }
    send(login);
  });
  $("nick").addEventListener("input", () => { $("password-row").hidden = true; });  // another nickname: ask again
  $("register-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const password = $("register-password").value;
    state.pendingPassword = password;
    if (send({type: "register", password})) $("register-password").value = "";
  });
  $("bell").addEventListener("click", () => {
    if ("Notification" in window) Notification.requestPermission().then(renderBell);
  });
  $("messages").addEventListener("scroll", () => { if ($("messages").scrollTop < 40) loadOlder(); });
  $("messages").addEventListener("wheel", (wheel) => { if (wheel.deltaY < 0 && $("messages").scrollTop === 0) loadOlder(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) markRead(state.current); });
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
