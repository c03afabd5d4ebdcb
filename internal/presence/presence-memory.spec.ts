import { MemoryPresence } from "./presence-memory.js";
import { fakeClock, presenceContract } from "../../test/support/presence-contract.js";

// Every timer of MemoryPresence runs in this process: the cases run on a fake clock.
presenceContract("MemoryPresence", async (config, publish) => new MemoryPresence(config, publish), fakeClock);
