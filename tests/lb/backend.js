// A stand-in API server for the live load-balancer test: HTTPS on 127.0.0.1:<port>.
//   GET /readyz  200 "ok", or 500 while the file <dir>/<name>.unready exists
//   GET /stream  20 chunks, one every 100 ms (a long-lived watch)
//   anything else  200 with the backend's name, so the test sees where a request landed
// Usage: node backend.js <name> <port> <dir-with-tls.crt-and-tls.key>
"use strict";
const fs = require("fs");
const https = require("https");
const path = require("path");

const [name, port, dir] = process.argv.slice(2);
const server = https.createServer(
  { cert: fs.readFileSync(path.join(dir, "tls.crt")), key: fs.readFileSync(path.join(dir, "tls.key")) },
  (req, res) => {
    if (req.url === "/readyz") {
      const unready = fs.existsSync(path.join(dir, `${name}.unready`));
      res.writeHead(unready ? 500 : 200).end(unready ? "[-]etcd failed" : "ok");
    } else if (req.url === "/stream") {
      res.writeHead(200, { "content-type": "text/plain" });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(`${name} chunk ${++sent}\n`);
        if (sent === 20) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
    } else {
      res.writeHead(200).end(name);
    }
  },
);
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
