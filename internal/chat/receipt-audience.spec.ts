import { describe, expect, it } from "vitest";
import { ReceiptAudience } from "./receipt-audience.js";

const members = ["ann", "bob", "cat", "dan"];
const receipt = (userId: string, deliveredSeq: number, readSeq: number) => ({ conversationId: "g", userId, deliveredSeq, readSeq });

describe("ReceiptAudience", () => {
  it("sends a member's receipt to the senders of the messages it passes, not to every member", () => {
    const a = new ReceiptAudience();
    a.sent("g", 1, "ann");
    a.sent("g", 2, "bob");
    a.sent("g", 3, "ann");
    // bob's first receipt: nothing told about bob yet, so everyone.
    expect(a.audience(receipt("bob", 1, 0), members)).toEqual(members);
    // delivered 1 -> 3 passes bob's own 2 and ann's 3: ann only.
    expect(a.audience(receipt("bob", 3, 0), members)).toEqual(["ann"]);
    // read 0 -> 2 passes ann's 1 and bob's own 2: ann.
    expect(a.audience(receipt("bob", 3, 2), members)).toEqual(["ann"]);
    a.sent("g", 4, "cat");
    a.sent("g", 5, "dan");
    expect(a.audience(receipt("bob", 5, 5), members)).toEqual(["ann", "cat", "dan"]);
    // Nothing new passed: nobody.
    expect(a.audience(receipt("bob", 5, 5), members)).toEqual([]);
  });

  it("goes to every member for a range it cannot name in full: older than it keeps, or not sequenced here", () => {
    const a = new ReceiptAudience(3);
    for (let seq = 1; seq <= 5; seq++) a.sent("g", seq, "ann");
    a.audience(receipt("bob", 1, 1), members);
    // It keeps seqs 3-5 only: 2 is unknown.
    expect(a.audience(receipt("bob", 4, 1), members)).toEqual(members);
    expect(a.audience(receipt("bob", 5, 1), members)).toEqual(["ann"]);
    // Seq 7 was sequenced elsewhere (6 skipped here): a hole means everyone.
    a.sent("g", 7, "cat");
    expect(a.audience(receipt("bob", 7, 1), members)).toEqual(members);
    // A conversation it knows nothing of.
    expect(a.audience({ ...receipt("bob", 1, 1), conversationId: "other" }, members)).toEqual(members);
  });

  it("forgets the conversations it no longer owns", () => {
    const a = new ReceiptAudience();
    a.sent("g", 1, "ann");
    a.audience(receipt("bob", 0, 0), members);
    a.sent("g", 2, "ann");
    a.forgetWhere((id) => id === "g");
    expect(a.audience(receipt("bob", 2, 2), members)).toEqual(members);
  });

  it("keeps at most the given number of conversations", () => {
    const a = new ReceiptAudience(128, 2);
    for (const c of ["c1", "c2", "c3"]) {
      a.sent(c, 1, "ann");
      a.audience({ conversationId: c, userId: "bob", deliveredSeq: 0, readSeq: 0 }, members);
    }
    a.sent("c1", 2, "ann");
    expect(a.audience({ conversationId: "c1", userId: "bob", deliveredSeq: 2, readSeq: 0 }, members)).toEqual(members);
    a.sent("c3", 2, "ann");
    expect(a.audience({ conversationId: "c3", userId: "bob", deliveredSeq: 2, readSeq: 0 }, members)).toEqual(["ann"]);
  });
});
