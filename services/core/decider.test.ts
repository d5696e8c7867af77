// fold: the one way a decider's events become its state.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fold } from "./decider.ts";

describe("fold", () => {
  test("starts from initialState and applies events in order", () => {
    const counter = {
      initialState: () => [] as string[],
      evolve: (s: string[], e: string) => [...s, e],
    };
    assert.deepEqual(fold(counter, []), []);
    assert.deepEqual(fold(counter, ["a", "b", "c"]), ["a", "b", "c"]);
  });

  test("accepts any iterable, including a generator, and consumes it once", () => {
    let pulled = 0;
    function* gen(): Generator<string> {
      for (const x of ["x", "y"]) {
        pulled++;
        yield x;
      }
    }
    const counter = { initialState: () => "", evolve: (s: string, e: string) => s + e };
    assert.equal(fold(counter, gen()), "xy");
    assert.equal(pulled, 2);
  });

  test("calls initialState anew for each fold, so folds do not share state", () => {
    const d = {
      initialState: () => ({ n: 0 }),
      evolve: (s: { n: number }, e: number) => {
        s.n += e;
        return s;
      },
    };
    assert.deepEqual(fold(d, [1, 2]), { n: 3 });
    assert.deepEqual(fold(d, [5]), { n: 5 });
  });
});
