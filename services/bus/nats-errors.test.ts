import { test } from "node:test";
import assert from "node:assert/strict";
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  ClosedConnectionError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import { classifyNatsError } from "./nats-errors.ts";
import { PublishTimeout } from "./publisher.ts";

const api = (code: number, err_code: number, description: string) =>
  new JetStreamApiError({ code, err_code, description });

test("a lost quorum's answer is unavailable, whatever its wording", () => {
  assert.equal(classifyNatsError(api(503, 10008, "JetStream system temporarily unavailable")), "unavailable");
  assert.equal(classifyNatsError(api(503, 99999, "anything else the server says")), "unavailable");
});

test("transport failures are unavailable, also wrapped as causes", () => {
  assert.equal(classifyNatsError(new TimeoutError()), "unavailable");
  assert.equal(classifyNatsError(new ClosedConnectionError()), "unavailable");
  assert.equal(classifyNatsError(new PublishTimeout("no ack")), "unavailable");
  assert.equal(
    classifyNatsError(new RequestError("failed", { cause: new NoRespondersError("$JS.API.X") })),
    "unavailable",
  );
});

test("refusals and other failures are not retried", () => {
  assert.equal(classifyNatsError(new PermissionViolationError("x", "publish", "a.b")), "refused");
  assert.equal(classifyNatsError(api(400, 10071, "wrong last sequence: 3")), "other");
  assert.equal(classifyNatsError(new Error("request timeout")), "other", "a message is not a type");
  assert.equal(classifyNatsError(undefined), "other");
});
