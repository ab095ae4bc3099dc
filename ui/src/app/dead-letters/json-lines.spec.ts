// Unit tests of json-lines: pointers found at their line in pretty-printed and hand-edited
// JSON, escapes in names and pointers, and where a text stops being JSON.
import { lineAt, lineOfPointer, lineSpan, pointerTokens, syntaxErrorLine } from './json-lines';

const PRETTY = JSON.stringify(
  { orderId: 'o-1', amount: -3, items: [{ sku: 'A', quantity: 1 }, { sku: 'B', quantity: 2 }], shipTo: { country: 'DE' } },
  null,
  2,
);

describe('lineOfPointer', () => {
  it('finds each value of pretty-printed JSON at its line', () => {
    const cases: [string, number][] = [
      ['', 1],
      ['/orderId', 2],
      ['/amount', 3],
      ['/items', 4],
      ['/items/0', 5],
      ['/items/0/sku', 6],
      ['/items/0/quantity', 7],
      ['/items/1', 9],
      ['/items/1/quantity', 11],
      ['/shipTo', 14],
      ['/shipTo/country', 15],
    ];
    for (const [pointer, line] of cases) expect(lineOfPointer(PRETTY, pointer)).withContext(pointer).toBe(line);
  });

  it('follows the text as edited, not as it was printed', () => {
    const text = '{"orderId": "o-1",\n\n   "items": [ {"sku": "A"},\n {"sku":\n\n "B"} ], "amount"\n:\n-3}';
    expect(lineOfPointer(text, '/orderId')).toBe(1);
    expect(lineOfPointer(text, '/items/0/sku')).toBe(3);
    expect(lineOfPointer(text, '/items/1')).toBe(4);
    expect(lineOfPointer(text, '/items/1/sku')).toBe(6);
    expect(lineOfPointer(text, '/amount')).toBe(8);
  });

  it('is not fooled by brackets, quotes and line breaks inside strings', () => {
    const text = '{\n  "note": "a } ] \\" \\n [ {",\n  "next": {\n    "x": 1\n  }\n}';
    expect(JSON.parse(text).note).toBe('a } ] " \n [ {');
    expect(lineOfPointer(text, '/next/x')).toBe(4);
  });

  it('decodes ~1 and ~0 in the pointer and escapes in the names', () => {
    const text = '{\n  "a/b": 1,\n  "m~n": 2,\n  "\\u00e9t\\u00e9": 3,\n  "": 4\n}';
    expect(lineOfPointer(text, '/a~1b')).toBe(2);
    expect(lineOfPointer(text, '/m~0n')).toBe(3);
    expect(lineOfPointer(text, '/été')).toBe(4);
    expect(lineOfPointer(text, '/')).toBe(5);
    expect(pointerTokens('/~01')).toEqual(['~1']);
  });

  it('takes the last of duplicate names, as JSON.parse does', () => {
    expect(lineOfPointer('{"a": 1,\n"a": 2}', '/a')).toBe(2);
  });

  it('says null for what does not exist', () => {
    for (const pointer of ['/nope', '/items/9', '/items/-', '/items/01', '/items/x', '/amount/0', 'amount']) {
      expect(lineOfPointer(PRETTY, pointer)).withContext(pointer).toBeNull();
    }
  });

  it('says null for text that is not JSON', () => {
    for (const text of ['', '{', '{"a": 1,}', '{"a": 1} x', "{'a': 1}", '{"a": 01}', '{"a": tru}', '{"a": "x\ny"}', '[1 2]']) {
      expect(lineOfPointer(text, '')).withContext(text).toBeNull();
    }
  });

  it('agrees with JSON.parse on what is JSON', () => {
    const texts = ['0', '-0.5e+3', '"\\ud83d\\ude00"', '[]', '{}', ' \t\r\n[true,false,null] ', '1.', '.5', '-', '"\\x"', '[1,]', '"a\tb"'];
    for (const text of texts) {
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      expect(lineOfPointer(text, '') !== null).withContext(text).toBe(valid);
    }
  });
});

describe('syntaxErrorLine', () => {
  const broken = '{\n  "a": 1\n  "b": 2\n}';

  it('finds the line where the text stops being JSON', () => {
    expect(syntaxErrorLine(broken)).toBe(3);
    expect(syntaxErrorLine('{\n"a": [1,\n2,\n')).toBe(4);
    expect(syntaxErrorLine(PRETTY)).toBeNull();
  });

  it("takes the position JSON.parse's message gives", () => {
    expect(syntaxErrorLine(broken, 'Unexpected string in JSON at position 13')).toBe(3);
    expect(syntaxErrorLine(broken, "Expected ',' or '}' after property value in JSON at position 13 (line 3 column 3)")).toBe(3);
    expect(syntaxErrorLine(broken, 'JSON.parse: expected \',\' or \'}\' after property value in object at line 3 column 3 of the JSON data')).toBe(3);
  });

  it('places what this browser says at the same line', () => {
    let message = '';
    try {
      JSON.parse(broken);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(syntaxErrorLine(broken, message)).toBe(3);
  });
});

describe('lineAt and lineSpan', () => {
  it('turn offsets into lines and lines into ranges', () => {
    const text = 'ab\ncd\n\nef';
    expect(lineAt(text, 0)).toBe(1);
    expect(lineAt(text, 3)).toBe(2);
    expect(lineAt(text, 100)).toBe(4);
    expect(lineSpan(text, 1)).toEqual([0, 2]);
    expect(text.slice(...lineSpan(text, 2))).toBe('cd');
    expect(lineSpan(text, 3)).toEqual([6, 6]);
    expect(text.slice(...lineSpan(text, 4))).toBe('ef');
    expect(lineSpan(text, 9)).toEqual([text.length, text.length]);
  });
});
