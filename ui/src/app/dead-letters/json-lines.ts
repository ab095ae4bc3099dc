/**
 * Where things are in a JSON text, by line: the line of the value a JSON pointer (RFC 6901)
 * names, and the line where a text stops being JSON. A small tokenizer that counts lines,
 * so that the dead-letter editor can show the API's schema problems at their place.
 */

/** A value as the tokenizer saw it: where it starts, and its members for containers. */
type Located =
  | { line: number; kind: 'object'; members: Map<string, Located> }
  | { line: number; kind: 'array'; items: Located[] }
  | { line: number; kind: 'scalar' };

/** The text is not JSON; `line` is where (1-based). */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Reader {
  private at = 0;
  private line = 1;

  constructor(private readonly text: string) {}

  document(): Located {
    const value = this.value();
    this.space();
    if (this.at < this.text.length) this.fail('more text after the JSON value');
    return value;
  }

  private fail(message: string): never {
    throw new JsonSyntaxError(message, this.line);
  }

  private space(): void {
    for (; this.at < this.text.length; this.at++) {
      const c = this.text[this.at];
      if (c === '\n') this.line++;
      else if (c !== ' ' && c !== '\t' && c !== '\r') return;
    }
  }

  private value(): Located {
    this.space();
    const line = this.line;
    const c = this.text[this.at];
    if (c === '{') return this.object(line);
    if (c === '[') return this.array(line);
    if (c === '"') {
      this.string();
      return { line, kind: 'scalar' };
    }
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return { line, kind: 'scalar' };
      }
    }
    NUMBER.lastIndex = this.at;
    if (NUMBER.exec(this.text)) {
      this.at = NUMBER.lastIndex;
      return { line, kind: 'scalar' };
    }
    return this.fail(c === undefined ? 'the text ends where a value should be' : `unexpected ${JSON.stringify(c)}`);
  }

  private object(line: number): Located {
    const members = new Map<string, Located>();
    this.at++;
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
      return { line, kind: 'object', members };
    }
    for (;;) {
      this.space();
      if (this.text[this.at] !== '"') this.fail('expected a property name in double quotes');
      const key = this.string();
      this.space();
      if (this.text[this.at] !== ':') this.fail("expected ':' after a property name");
      this.at++;
      // As JSON.parse does, the last of duplicate names wins.
      members.set(key, this.value());
      this.space();
      const c = this.text[this.at++];
      if (c === '}') return { line, kind: 'object', members };
      if (c !== ',') {
        this.at--;
        this.fail("expected ',' or '}' after a property value");
      }
    }
  }

  private array(line: number): Located {
    const items: Located[] = [];
    this.at++;
    this.space();
    if (this.text[this.at] === ']') {
      this.at++;
      return { line, kind: 'array', items };
    }
    for (;;) {
      items.push(this.value());
      this.space();
      const c = this.text[this.at++];
      if (c === ']') return { line, kind: 'array', items };
      if (c !== ',') {
        this.at--;
        this.fail("expected ',' or ']' after an array element");
      }
    }
  }

  /** A string token; its decoded text. */
  private string(): string {
    const start = this.at;
    this.at++;
    for (; this.at < this.text.length; this.at++) {
      const c = this.text[this.at];
      if (c === '"') {
        this.at++;
        // The token is well-formed here apart from its escapes, which JSON.parse checks.
        try {
          return JSON.parse(this.text.slice(start, this.at)) as string;
        } catch {
          return this.fail('a bad escape in a string');
        }
      }
      if (c === '\\') {
        this.at++;
        if (this.text[this.at] === '\n') this.fail('a bad escape in a string');
      } else if (c < ' ') this.fail(c === '\n' ? 'a string runs past the end of its line' : 'a control character in a string');
    }
    return this.fail('a string is not closed');
  }
}

/** The tokens of a JSON pointer ("" is the whole document), or null when it is not one. */
export function pointerTokens(pointer: string): string[] | null {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return null;
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * The line (1-based) where the value `pointer` names starts in `text`; null when the text is
 * not JSON or has no such value.
 */
export function lineOfPointer(text: string, pointer: string): number | null {
  const tokens = pointerTokens(pointer);
  if (tokens === null) return null;
  let node: Located;
  try {
    node = new Reader(text).document();
  } catch {
    // Not JSON, or nested deeper than the stack allows.
    return null;
  }
  for (const token of tokens) {
    if (node.kind === 'object') {
      const next = node.members.get(token);
      if (!next) return null;
      node = next;
    } else if (node.kind === 'array') {
      if (!/^(?:0|[1-9][0-9]*)$/.test(token)) return null;
      const next = node.items[Number(token)];
      if (!next) return null;
      node = next;
    } else {
      return null;
    }
  }
  return node.line;
}

/**
 * The line where `text` stops being JSON, null when it is JSON. `parseMessage` is what
 * JSON.parse said: when it names a position ("at position 42", "line 3 column 5"), that wins.
 */
export function syntaxErrorLine(text: string, parseMessage = ''): number | null {
  const lineColumn = /line (\d+) column \d+/.exec(parseMessage);
  if (lineColumn) return Number(lineColumn[1]);
  const position = /at position (\d+)/.exec(parseMessage);
  if (position) return lineAt(text, Number(position[1]));
  try {
    new Reader(text).document();
    return null;
  } catch (e) {
    return e instanceof JsonSyntaxError ? e.line : null;
  }
}

/** The line (1-based) of the character at `offset`. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) if (text[i] === '\n') line++;
  return line;
}

/** Where line `line` (1-based) is in `text`: [start, end) offsets, without its line break. */
export function lineSpan(text: string, line: number): [number, number] {
  let start = 0;
  for (let n = 1; n < line; n++) {
    const next = text.indexOf('\n', start);
    if (next < 0) return [text.length, text.length];
    start = next + 1;
  }
  const end = text.indexOf('\n', start);
  return [start, end < 0 ? text.length : end];
}
