import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, type ClientError } from "../../internal/client/client.js";
import { device, newUser, startCluster, waitFor, type Device, type TestCluster } from "./harness.js";

// Chat reuses a user's routes while the store answers the same route version (docs/performance.md,
// "The route cache"). Routes pick edges (an edge delivers to every session of the user it holds),
// so the devices below move between two edges. The edges' periodic head check is off: a device
// the cache left out would see a live message only when a later one showed the gap, so each wait
// below would fail.
let c: TestCluster;
beforeAll(async () => { c = await startCluster({ HEAD_CHECK_INTERVAL_MS: "0", ROUTE_CACHE_MS: "600000" }, { edges: 2, chats: 1 }); });
afterAll(async () => { await c?.stop(); });

describe("the route cache", () => {
  it("delivers live to a device that connected after chat fetched its user's routes, on another edge, and follows devices between edges", async () => {
    const edge0 = { wsUrl: c.wsUrls[0]! };
    const edge1 = { wsUrl: c.wsUrls[1]! };
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(edge0, alice);
    const laptop = await device(edge0, bob, "bob-laptop");
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "one");
    await waitFor("the laptop has the first message", () => laptop.in(conv.id).length === 1);

    // Connected after chat fetched bob's routes (the laptop's edge alone): its catch-up moved bob's version.
    const phone = await device(edge1, bob, "bob-phone");
    expect(phone.in(conv.id).map((m) => m.text)).toEqual(["one"]);
    await a.client.send(conv.id, "two");
    await waitFor("the phone has the second message live", () => phone.in(conv.id).length === 2, { seen: () => phone.in(conv.id).map((m) => m.text).join(",") });
    await waitFor("the laptop too", () => laptop.in(conv.id).length === 2);

    // The laptop leaves its edge, and a tablet comes to it: the messages after go to the phone and the tablet.
    await laptop.close();
    const tablet = await device(edge0, bob, "bob-tablet");
    for (const text of ["three", "four"]) await a.client.send(conv.id, text);
    await waitFor("the phone has four", () => phone.in(conv.id).length === 4);
    await waitFor("the tablet has four", () => tablet.in(conv.id).length === 4, { seen: () => tablet.in(conv.id).map((m) => m.text).join(",") });
    expect(tablet.in(conv.id).map((m) => m.text)).toEqual(["one", "two", "three", "four"]);
    expect(laptop.in(conv.id).map((m) => m.text)).toEqual(["one", "two"]);

    // The phone moves to the other edge (the tablet leaves it first): still live.
    await Promise.all([phone.close(), tablet.close()]);
    // The other edge tells presence of the phone's close on its own time: until it has, the device
    // id is in use (DEVICE_IN_USE), and the product's client would ask again, as this does.
    let phoneAgain: Device | undefined;
    await waitFor("the phone's session on the other edge ended", async () => {
      phoneAgain = await device(edge0, bob, "bob-phone", { reconnect: false }).catch((e: ClientError) => {
        if (e.code !== ErrorCode.ERROR_CODE_DEVICE_IN_USE) throw e;
        return undefined;
      });
      return phoneAgain !== undefined;
    });
    await a.client.send(conv.id, "five");
    await waitFor("the phone, back, has five live", () => phoneAgain!.in(conv.id).some((m) => m.text === "five"), { seen: () => phoneAgain!.in(conv.id).map((m) => m.text).join(",") });
    await Promise.all([a.close(), phoneAgain!.close()]);
  });
});
