import cassandra from "cassandra-driver";
import { ConfigError } from "../config/env.js";

const { consistencies } = cassandra.types;

/**
 * One data centre writes a keyspace at a time. Appends decide seqs and log positions with
 * LOCAL_SERIAL (Paxos among the local DC's replicas: a WAN round trip per append otherwise), so
 * two DCs writing one keyspace could each commit the same seq of a conversation. The keyspace
 * records its writer DC (`store_roles`, decided with SERIAL, across every DC, once per
 * claim); a store instance in another DC refuses to start unless told to take over, which an
 * operator does after the writer DC is down (docs/scaling.md, "Regions"). Other DCs may hold
 * replicas (disaster recovery, local reads); they do not write.
 */
export async function claimWriterDc(client: cassandra.Client, keyspace: string, localDc: string, takeOver: boolean): Promise<void> {
  const serial = { prepare: true, consistency: consistencies.quorum, serialConsistency: consistencies.serial };
  const claim = await client.execute(`INSERT INTO ${keyspace}.store_roles (name, value) VALUES ('writer_dc', ?) IF NOT EXISTS`, [localDc], serial);
  if (claim.wasApplied()) return;
  const writer = claim.first()?.["value"] as string | undefined;
  if (writer === localDc) return;
  if (!takeOver) {
    throw new ConfigError(
      `keyspace ${keyspace} is written from data centre ${writer}, not ${localDc}: one data centre writes at a time. ` +
      `After ${writer} is down, start with CASSANDRA_TAKE_OVER_WRITES=true to move the writes here.`,
    );
  }
  const moved = await client.execute(`UPDATE ${keyspace}.store_roles SET value = ? WHERE name = 'writer_dc' IF value = ?`, [localDc, writer], serial);
  // Someone else moved it meanwhile: start over from what is there now.
  if (!moved.wasApplied()) return claimWriterDc(client, keyspace, localDc, false);
}
