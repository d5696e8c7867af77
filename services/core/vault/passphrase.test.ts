import { test } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import {
  curvePublicNkey,
  formatGenesisKey,
  newGenesisKdf,
  parseGenesisKey,
  passphrasePair,
  GENESIS_KDF_PARAMS,
} from "./passphrase.ts";
import { curvePublicRaw, openSealed, sealTo } from "./seal.ts";

const pass = (s: string) => new TextEncoder().encode(s);

test("a genesis key spec: a bare curve key, or scrypt parameters, salt and key; round trip, and anything else refused", () => {
  const x = createCurve().getPublicKey();
  assert.deepEqual(parseGenesisKey(x), { operator: x, kdf: null });
  const kdf = newGenesisKdf();
  assert.deepEqual([kdf.alg, kdf.ln, kdf.r, kdf.p], [GENESIS_KDF_PARAMS.alg, 17, 8, 1]);
  const spec = formatGenesisKey({ operator: x, kdf });
  assert.equal(spec, `scrypt:ln=17,r=8,p=1:${kdf.salt}:${x}`);
  assert.deepEqual(parseGenesisKey(spec), { operator: x, kdf });
  for (const bad of [
    "",
    "X",
    `U${x.slice(1)}`,
    `scrypt:ln=17,r=8,p=1:${kdf.salt}:`,
    `scrypt:ln=17,r=8,p=1:short:${x}`,
    `argon2:ln=17,r=8,p=1:${kdf.salt}:${x}`,
    `scrypt:ln=13,r=8,p=1:${kdf.salt}:${x}`, // too cheap
    `scrypt:ln=22,r=8,p=1:${kdf.salt}:${x}`, // 4 GiB: over the memory cap
    `${spec} `,
    `scrypt:ln=17,r=8,p=1:${kdf.salt}:${x}:more`,
  ])
    assert.equal(parseGenesisKey(bad), null, bad);
});

test("the passphrase pair is the same for the same passphrase and salt, another for either changed, and boxes sealed to its key open with it", async () => {
  const kdf = { ...newGenesisKdf(), ln: 14 };
  const a = await passphrasePair(pass("correct horse battery staple"), kdf);
  const b = await passphrasePair(pass("correct horse battery staple"), kdf);
  assert.deepEqual([a.publicKey, a.secretKey], [b.publicKey, b.secretKey]);
  const otherSalt = await passphrasePair(pass("correct horse battery staple"), { ...kdf, salt: newGenesisKdf().salt });
  const otherPass = await passphrasePair(pass("correct horse battery stapler"), kdf);
  assert.notDeepEqual(otherSalt.publicKey, a.publicKey);
  assert.notDeepEqual(otherPass.publicKey, a.publicKey);
  const nkey = curvePublicNkey(a.publicKey);
  assert.match(nkey, /^X[A-Z2-7]{55}$/);
  assert.deepEqual(curvePublicRaw(nkey), a.publicKey);
  const sealed = await sealTo(curvePublicRaw(nkey), pass("the data key"));
  assert.deepEqual(await openSealed(sealed, b), pass("the data key"));
  assert.equal(await openSealed(sealed, otherPass), null);
  await assert.rejects(passphrasePair(pass("x"), { ...kdf, ln: 30 }), /1 GiB|ln/);
});
