import { describe, expect, it } from "vitest";
import { AccountServiceService, ChatServiceService } from "../../gen/chat/internal/v1/chat.js";
import { EdgeDeliveryServiceService } from "../../gen/chat/internal/v1/edge.js";
import { NotifierServiceService } from "../../gen/chat/internal/v1/notifier.js";
import { PresenceServiceService } from "../../gen/chat/internal/v1/presence.js";
import { MessageStoreServiceService } from "../../gen/chat/internal/v1/store.js";
import { CALLER_POLICY, INTERNAL_PACKAGE, methodOf, UNCALLED_METHODS } from "./caller-policy.js";

/** The services each process serves (cmd/<service>/main.ts). */
const SERVED: Record<string, object[]> = {
  edge: [EdgeDeliveryServiceService],
  chat: [ChatServiceService, AccountServiceService],
  presence: [PresenceServiceService],
  "message-store": [MessageStoreServiceService],
  notifier: [NotifierServiceService],
};

const methods = (defs: object[]) => defs.flatMap((d) => Object.values(d).map((m: { path: string }) => m.path));

describe("the mesh's caller policy", () => {
  it("decides every method of every service: some caller may call it, or it is listed as called by none", () => {
    for (const [identity, defs] of Object.entries(SERVED)) {
      const allowed = new Set(Object.values(CALLER_POLICY[identity] ?? {}).flat());
      for (const path of methods(defs)) {
        expect(path.startsWith(`/${INTERNAL_PACKAGE}.`)).toBe(true);
        const m = methodOf(path);
        expect(allowed.has(m) || UNCALLED_METHODS.includes(m), `${identity} serves ${m}, which the policy does not decide`).toBe(true);
      }
    }
  });

  it("names only methods that the service it guards really serves", () => {
    for (const [identity, callers] of Object.entries(CALLER_POLICY)) {
      const served = new Set(methods(SERVED[identity] ?? []).map(methodOf));
      for (const [caller, list] of Object.entries(callers)) for (const m of list) expect(served.has(m), `${caller} -> ${identity}: ${m}`).toBe(true);
    }
  });

  it("keeps password hashes and writes away from the edge", () => {
    const edgeOnStore = CALLER_POLICY["message-store"]!.edge!;
    for (const m of ["MessageStoreService/GetUserByName", "MessageStoreService/Append", "MessageStoreService/CreateUser", "MessageStoreService/UpdatePointers"]) expect(edgeOnStore).not.toContain(m);
    // Sessions are made, rotated and ended only by the accounts service; the edge only asks whether one is live.
    for (const m of ["MessageStoreService/CreateSession", "MessageStoreService/RotateSession", "MessageStoreService/EndSession", "MessageStoreService/SetPassword"]) expect(edgeOnStore).not.toContain(m);
    expect(edgeOnStore).toContain("MessageStoreService/CheckSessions");
    expect(CALLER_POLICY.edge!.presence).toEqual(["EdgeDeliveryService/Deliver"]);
  });
});
