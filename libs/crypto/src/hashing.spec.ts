import { constantTimeEqual, sha256Hex } from './hashing';

describe('sha256Hex', () => {
  it('matches the FIPS 180-2 test vectors', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('hashes the UTF-8 encoding and returns 64 lower-case hex digits', () => {
    // sha256 of the bytes c3 a9 ("é" in UTF-8), not of the Latin-1 byte e9
    expect(sha256Hex('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
    expect(sha256Hex('é')).not.toBe(sha256Hex('\u00c3\u00a9'));
    expect(sha256Hex('any key')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('constantTimeEqual', () => {
  it.each([
    ['', '', true],
    ['secret', 'secret', true],
    ['sk-abc-123', 'sk-abc-123', true],
    ['🔑 key', '🔑 key', true],
    ['secret', 'Secret', false],
    ['secret', 'secreT', false],
    ['secret', 'secret ', false],
    ['secret', 'secre', false],
    ['', 'x', false],
    ['x', '', false],
    ['a'.repeat(1000), 'a'.repeat(999), false],
    ['a'.repeat(1000), 'a'.repeat(1000), true],
  ])('constantTimeEqual(%j, %j) is %s', (a, b, expected) => {
    expect(constantTimeEqual(a, b)).toBe(expected);
    expect(constantTimeEqual(b, a)).toBe(expected);
  });
});
