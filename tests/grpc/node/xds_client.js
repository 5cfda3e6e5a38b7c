// A proxyless gRPC client for the tests, the Node twin of ../xds_client.py: calls
// /bosun.test.Echo/Say on TARGET (an xds:/// URI, resolved through the xDS server named in
// $GRPC_XDS_BOOTSTRAP) every 100 ms and prints one line per call: "ok <reply>" or
// "error <code> <details>". Runs until SIGTERM, for DEADLINE seconds at most, or until its
// parent (the test) exits. Modules come from $NODE_PATH (scripts/test.sh installs them).
//
// Usage: node xds_client.js TARGET DEADLINE
'use strict';

const grpc = require('@grpc/grpc-js');
require('@grpc/grpc-js-xds').register();

const [target, deadlineSeconds] = process.argv.slice(2);
const stopAt = Date.now() + Number(deadlineSeconds) * 1000;
const parent = process.ppid;
const client = new grpc.Client(target, grpc.credentials.createInsecure());
const identity = (buffer) => buffer;

function call() {
  if (Date.now() >= stopAt || process.ppid !== parent) {
    client.close();
    process.exit(0);
  }
  const options = { deadline: Date.now() + 2000, waitForReady: true };
  client.makeUnaryRequest('/bosun.test.Echo/Say', identity, identity, Buffer.alloc(0), options, (err, reply) => {
    if (err) {
      console.log(`error ${grpc.status[err.code]} ${String(err.details).replace(/\n/g, ' ')}`);
    } else {
      console.log(`ok ${reply.toString()}`);
    }
    setTimeout(call, 100);
  });
}

process.on('SIGTERM', () => process.exit(0));
call();
