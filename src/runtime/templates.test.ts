import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_RENDERED_CHARS,
  MAX_SECRET_USES,
  parseTemplate,
  renderBudget,
  renderTemplate,
  resolvePath,
  soleVariable,
  TemplateError,
} from './templates.js';

const vars: Record<string, unknown> = {
  name: 'Ada',
  user: { id: 7, tags: ['a', 'b'], 'odd key': true },
  list: [10, { deep: 'x' }],
  $run_id: 'run_1',
  sneaky: '{{secret:zendesk_token}}',
};
const ctx = {
  variable: (n: string) => vars[n],
  secret: (n: string) => {
    if (n !== 'zendesk_token') throw new Error('secret_unavailable');
    return 'S3CR3T';
  },
};
const render = (source: string) => renderTemplate(parseTemplate(source), ctx);

describe('templates', () => {
  it('renders variables, paths, system variables and secrets', () => {
    expect(render('Hi {{name}} #{{ user.id }} {{user.tags[1]}} {{list[1].deep}} {{$run_id}}')).toBe(
      'Hi Ada #7 b x run_1',
    );
    expect(render('{{user["odd key"]}}')).toBe('true');
    expect(render('Bearer {{secret:zendesk_token}}')).toBe('Bearer S3CR3T');
    expect(render('{{ SECRET : zendesk_token }}')).toBe('S3CR3T');
  });

  it('writes maps and lists as JSON and missing values as empty', () => {
    expect(render('{{user.tags}}')).toBe('["a","b"]');
    expect(render('[{{nothing}}][{{user.missing}}][{{list[9]}}]')).toBe('[][][]');
  });

  it('lists the secrets and variables it references', () => {
    const t = parseTemplate('{{a}} {{secret:X}} {{b.c}} {{secret:Y}}');
    expect(t.secrets).toEqual(['X', 'Y']);
    expect(t.variables).toEqual(['a', 'b']);
  });

  it('never resolves a secret smuggled in through a value', () => {
    expect(render('{{sneaky}}')).toBe('{{secret:zendesk_token}}');
    expect(parseTemplate('{{sneaky}}').secrets).toEqual([]);
  });

  it('secrets are counted, not measured: whether a block fits tells nothing of a secret', () => {
    const fitsWith = (value: string, padding: number, uses = 1) => {
      const budget = renderBudget();
      const c = { variable: () => 'x'.repeat(padding), secret: () => value, budget };
      try {
        renderTemplate(parseTemplate(`{{pad}}${'{{secret:k}}'.repeat(uses)}`), c);
        return true;
      } catch {
        return false;
      }
    };
    for (const value of ['s', 'a much longer secret value'.repeat(100)]) {
      expect([fitsWith(value, MAX_RENDERED_CHARS), fitsWith(value, MAX_RENDERED_CHARS + 1)]).toEqual([true, false]);
      expect([fitsWith(value, 0, MAX_SECRET_USES), fitsWith(value, 0, MAX_SECRET_USES + 1)]).toEqual([true, false]);
    }
  });

  it('keeps escaped braces literal', () => {
    expect(render('\\{{name}} is {{name}}')).toBe('{{name}} is Ada');
  });

  it.each([
    '{{',
    'a {{name',
    '{{}}',
    '{{1abc}}',
    '{{secret:}}',
    '{{secret:1x}}',
    '{{name..x}}',
    '{{name[-1]}}',
    '{{a b}}',
    '{{a["\\u"]}}',
    '{{a["\\x"]}}',
    '{{a["\t"]}}',
    '{{{{x}}}}',
  ])('refuses %j with a position', (source) => {
    expect(() => parseTemplate(source)).toThrow(TemplateError);
  });

  it('finds a sole variable for typed insertion', () => {
    expect(soleVariable(parseTemplate('{{user.id}}'))?.name).toBe('user');
    expect(soleVariable(parseTemplate('x{{user.id}}'))).toBeUndefined();
  });

  it('does not walk into inherited properties', () => {
    expect(resolvePath({}, [{ key: 'constructor' }])).toBeUndefined();
    expect(resolvePath({ a: 1 }, [{ key: '__proto__' }])).toBeUndefined();
  });

  it('text without braces renders as itself (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        fc.pre(!s.includes('{{'));
        expect(render(s)).toBe(s);
      }),
    );
  });

  it('rendered values are never re-parsed (property)', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const out = renderTemplate(parseTemplate('<{{v}}>'), { variable: () => value, secret: () => 'LEAK' });
        expect(out).toBe(`<${value}>`);
      }),
    );
  });
});
