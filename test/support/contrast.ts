/**
 * WCAG 2.1 text contrast measured in the page, for what axe-core leaves
 * "incomplete" (text over a modal dialog's backdrop, a floating dropdown):
 * the element's computed colour against the colour actually behind it, the
 * translucent backgrounds of its ancestors composited up to the first opaque
 * one (through a modal <dialog>'s ::backdrop to the page under it), and what
 * covers the element's centre, if anything (then its contrast is moot there).
 */
import type { Page } from 'playwright-core';

export interface Contrast {
  /** The selector, with the match's index when it matched several. */
  selector: string;
  /** Computed foreground, as the browser gives it. */
  color: string;
  /** The composited background, `rgb(r, g, b)`. */
  background: string;
  /** The backgrounds composited, nearest first (`tag.class: colour`). */
  layers: string[];
  fontSize: number;
  fontWeight: number;
  /** ≥ 24 px, or ≥ 18.66 px and bold (WCAG "large scale text"). */
  large: boolean;
  ratio: number;
  /** 4.5, or 3 for large text. */
  required: number;
  /** Set when the element's centre is covered by another element (e.g. an open dropdown). */
  coveredBy: string | null;
  /** Set when a background image (a gradient) sits behind the text: the ratio is then not decidable here. */
  backgroundImage: string | null;
}

// A string, not a function: the test tsconfig has no DOM types. Called in the page on the selectors.
const MEASURE = `(selectors) => {
  const parse = (c) => {
    const n = (c.match(/[\\d.]+%?/g) || []).map((v) => (v.endsWith('%') ? parseFloat(v) / 100 : parseFloat(v)));
    if (!/^rgba?\\(/.test(c) || n.length < 3) throw new Error('unsupported colour ' + c);
    return { r: n[0], g: n[1], b: n[2], a: n.length > 3 ? n[3] : 1 };
  };
  const over = (top, under) => {
    const a = top.a + under.a * (1 - top.a);
    if (a === 0) return { r: 0, g: 0, b: 0, a: 0 };
    const mix = (t, u) => (t * top.a + u * under.a * (1 - top.a)) / a;
    return { r: mix(top.r, under.r), g: mix(top.g, under.g), b: mix(top.b, under.b), a };
  };
  const lum = (c) => {
    const ch = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.classList.length ? '.' + [...e.classList].join('.') : '');
  const fmt = (c) => 'rgb(' + [c.r, c.g, c.b].map((v) => Math.round(v)).join(', ') + ')';
  const all = selectors.flatMap((selector) => {
    const found = [...document.querySelectorAll(selector)];
    if (found.length === 0) throw new Error('no element matches ' + selector);
    return found.map((el, i) => ({ el, selector: found.length > 1 ? selector + ' [' + i + ']' : selector }));
  });
  return all.map(({ el, selector }) => {
    const style = getComputedStyle(el);
    // Layers nearest first, until one is opaque; a modal dialog shows the page through its ::backdrop.
    const layers = [];
    let image = null;
    let opacity = 1;
    for (let e = el; e; ) {
      const s = getComputedStyle(e);
      opacity *= parseFloat(s.opacity);
      if (s.backgroundImage !== 'none' && !image) image = name(e) + ': ' + s.backgroundImage;
      const bg = parse(s.backgroundColor);
      if (bg.a > 0) layers.push({ where: name(e), c: bg });
      if (bg.a >= 1) break;
      if (e.matches('dialog:modal')) {
        const back = parse(getComputedStyle(e, '::backdrop').backgroundColor);
        if (back.a > 0) layers.push({ where: name(e) + '::backdrop', c: back });
        if (back.a >= 1) break;
        e = document.body;
        continue;
      }
      e = e.parentElement;
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 }; // the canvas, if nothing is opaque
    for (const l of [...layers].reverse()) bg = over(l.c, bg);
    const raw = parse(style.color);
    const fg = over({ ...raw, a: raw.a * opacity }, bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const fontSize = parseFloat(style.fontSize);
    const fontWeight = parseInt(style.fontWeight, 10);
    const large = fontSize >= 24 || (fontSize >= 18.66 && fontWeight >= 700);
    const box = el.getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const covered = top && top !== el && !el.contains(top) ? name(top) : null;
    return {
      selector,
      color: style.color,
      background: fmt(bg),
      layers: layers.map((l) => l.where + ': ' + fmt(l.c) + (l.c.a < 1 ? ' / ' + l.c.a : '')),
      fontSize,
      fontWeight,
      large,
      ratio: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100,
      required: large ? 3 : 4.5,
      coveredBy: covered,
      backgroundImage: image,
    };
  });
}`;

/** Measures the contrast of every element matching each selector (one that matches nothing throws). */
export function measureContrast(page: Page, selectors: string[]): Promise<Contrast[]> {
  return page.evaluate<Contrast[]>(`(${MEASURE})(${JSON.stringify(selectors)})`);
}
