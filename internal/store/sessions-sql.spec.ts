import { sessionStoreContract } from "../../test/support/session-store-contract.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { SqlStore } from "./store-sql.js";

// The embedded profile's sessions (PGlite in memory); PostgreSQL and Cassandra's directory run the same cases in test/servers.
sessionStoreContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
