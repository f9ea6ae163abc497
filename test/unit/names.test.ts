// One rule for container names and ids (runc's pattern, safe as a path
// component and as an argument), one for image names (OCI ref names).
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { checkContainerId, checkImageName, isValidContainerId, isValidImageName } from '../../src/oci/names.js';

describe('container names and ids', () => {
  it.each(['web-1.a_b', 'a+b', 'A', '0', 'x'.repeat(128), 'abc123def456', '_x', '.hidden'])('accepts %j', (id) => {
    expect(checkContainerId(id, 'rm')).toBe(id);
  });

  // '' and '..' are the ones that deleted the store and the directory above it.
  it.each(['', '.', '..', '../..', '../x', 'a/b', '/abs', 'a b', '-x', '--force', 'x'.repeat(129), 'a\0b', 'a\nb', 'é', 'a:b'])(
    'refuses %j',
    (id) => {
      expect(isValidContainerId(id)).toBe(false);
      expect(() => checkContainerId(id, 'rm')).toThrow(UsageError);
    },
  );

  it('says which command and what is wrong', () => {
    expect(() => checkContainerId('', 'rm')).toThrow('rm: container id cannot be empty');
    expect(() => checkContainerId(undefined, 'delete')).toThrow('delete: container id cannot be empty');
    expect(() => checkContainerId('..', '--name')).toThrow(/^--name: invalid container id format: "\.\."/);
  });
});

describe('image names', () => {
  it.each(['hello', 'hello:1.0', 'example.com/app:1.0', 'registry:5000/ns/app:1.0', 'a__b', 'a--b', 'a---b', `app@sha256:${'a'.repeat(64)}`, 'UPPER_case'])(
    'accepts %j',
    (name) => expect(checkImageName(name, 'image rm')).toBe(name),
  );

  it.each(['', '..', '../x', '/abs', 'a//b', 'a/', ':tag', 'a b', 'a\nb', '-x', 'x'.repeat(513), 'a/../b', 'é'])('refuses %j', (name) => {
    expect(isValidImageName(name)).toBe(false);
    expect(() => checkImageName(name, 'image import --name')).toThrow(UsageError);
  });
});
