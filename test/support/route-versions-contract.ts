import type { ServerUnaryCall } from "@grpc/grpc-js";
import { expect, it } from "vitest";
import type { AppendGroupResult } from "../../gen/chat/internal/v1/store.js";
import { storeService } from "../../internal/store/service.js";
import type { Store } from "../../internal/store/store.js";
import { group, msg, users } from "./store-contract.js";

/**
 * Route versions through the store's API (route-versions.ts, docs/performance.md "The route
 * cache"): a store that keeps them answers every member's version with an append; a device's
 * catch-up (ReadLog, or GetLogHeads marked catch_up) and a disconnect (RoutesChanged) move it, a
 * plain head check does not. A store that keeps none answers epoch 0, and chat then asks
 * presence for every delivery.
 */
export function routeVersionsContract(getStore: () => Store): void {
  const call = {} as ServerUnaryCall<unknown, unknown>;

  it("answers each member's route version with an append, moved by a catch-up or a disconnect and by nothing else", async () => {
    const store = getStore();
    const api = storeService(store);
    const [a, b, c] = await users(store, "rv-a", "rv-b", "rv-c");
    const conv = (await group(store, [a!, b!, c!])).conversation;
    const memberIds = [a!.id, b!.id, c!.id];
    let base = await store.lastSeq(conv.id);
    const append = async (clientMsgId: string): Promise<AppendGroupResult> => {
      const { results } = await api.append({ groups: [{ conversationId: conv.id, baseSeq: base, memberIds, messages: [msg(a!, clientMsgId)] }] }, call as never);
      expect(results[0]!.error).toBe(0);
      base = results[0]!.lastSeq;
      return results[0]!;
    };
    const first = await append("rv-1");
    if (!store.routeVersions) {
      expect(first).toMatchObject({ routeEpoch: 0, routeVersions: [] });
      return;
    }
    expect(first.routeEpoch).toBeGreaterThan(0);
    expect(first.routeVersions).toHaveLength(3);
    const versions = (r: AppendGroupResult) => r.routeVersions;
    // Nothing moved: the same versions.
    const same = await append("rv-2");
    expect(same.routeEpoch).toBe(first.routeEpoch);
    expect(versions(same)).toEqual(versions(first));
    // The edge's periodic head check is no route change.
    await api.getLogHeads({ userIds: memberIds, catchUp: false }, call as never);
    expect(versions(await append("rv-3"))).toEqual(versions(first));
    // b's device connected: its catch-up probes the head, then reads.
    await api.getLogHeads({ userIds: [b!.id], catchUp: true }, call as never);
    const afterProbe = versions(await append("rv-4"));
    expect(afterProbe[0]).toBe(versions(first)[0]);
    expect(afterProbe[1]).not.toBe(versions(first)[1]);
    expect(afterProbe[2]).toBe(versions(first)[2]);
    await api.readLog({ userId: c!.id, afterPos: 0, limit: 10 }, call as never);
    const afterRead = versions(await append("rv-5"));
    expect(afterRead[2]).not.toBe(afterProbe[2]);
    expect(afterRead.slice(0, 2)).toEqual(afterProbe.slice(0, 2));
    // a's device disconnected.
    await api.routesChanged({ userIds: [a!.id] }, call as never);
    const afterLeave = versions(await append("rv-6"));
    expect(afterLeave[0]).not.toBe(afterRead[0]);
    expect(afterLeave.slice(1)).toEqual(afterRead.slice(1));
  });
}
