import { MemoryPresence } from "./presence-memory.js";
import { presenceContract } from "./presence-contract.js";

presenceContract("MemoryPresence", async (config, publish) => new MemoryPresence(config, publish));
