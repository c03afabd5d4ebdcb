import fs from "node:fs";
import path from "node:path";
import { ChannelCredentials, credentials, ServerCredentials } from "@grpc/grpc-js";

/** Where a service finds its mesh certificate (made by `make certs` / mesh/certs.sh). */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export function tlsFilesFor(dir: string, identity: string): TlsFiles {
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, `${identity}.pem`), key: path.join(dir, `${identity}-key.pem`) };
}

export function serverCredentials(files: TlsFiles | null): ServerCredentials {
  if (!files) return ServerCredentials.createInsecure();
  // `true`: a client without a certificate signed by the mesh CA is refused at the handshake.
  return ServerCredentials.createSsl(fs.readFileSync(files.ca), [{ private_key: fs.readFileSync(files.key), cert_chain: fs.readFileSync(files.cert) }], true);
}

export function channelCredentials(files: TlsFiles | null): ChannelCredentials {
  if (!files) return credentials.createInsecure();
  return credentials.createSsl(fs.readFileSync(files.ca), fs.readFileSync(files.key), fs.readFileSync(files.cert));
}
