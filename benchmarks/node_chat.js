// Baseline, not part of chatd: a Node.js `net` chat of the same protocol.
//     node benchmarks/node_chat.js PORT
const net = require("net");
const users = new Map();
const server = net.createServer((socket) => {
  let name = null;
  let buffer = "";
  socket.write("*** Welcome. Choose a nickname:\r\n");
  socket.on("data", (chunk) => {
    buffer += chunk.toString("latin1");
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (name === null) {
        name = line;
        users.set(name, socket);
        socket.write(`*** Hello ${name}!\r\n`);
        continue;
      }
      const message = Buffer.from(`<${name}> ${line}\r\n`, "latin1");
      for (const [other, peer] of users) if (peer !== socket) peer.write(message);
    }
  });
  socket.on("close", () => { if (name !== null) users.delete(name); });
  socket.on("error", () => {});
});
server.listen(Number(process.argv[2]), "127.0.0.1", () => console.log(`listening on ${server.address().port}`));
