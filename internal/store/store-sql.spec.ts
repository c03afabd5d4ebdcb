import { PgliteSqlClient } from "./sql-pglite.js";
import { pageBoundsContract } from "../../test/support/page-bounds-contract.js";
import { SqlStore } from "./store-sql.js";

// The embedded profile's store (PGlite in memory); PostgreSQL and Cassandra run the same cases in test/servers.
pageBoundsContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
