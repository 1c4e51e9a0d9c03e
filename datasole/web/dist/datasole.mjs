// node_modules/fflate/esm/browser.js
var u8 = Uint8Array;
var u16 = Uint16Array;
var i32 = Int32Array;
var fleb = new u8([
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
  /* unused */
  0,
  0,
  /* impossible */
  0
]);
var fdeb = new u8([
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
  /* unused */
  0,
  0
]);
var clim = new u8([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);
var freb = function(eb, start) {
  var b = new u16(31);
  for (var i2 = 0; i2 < 31; ++i2) {
    b[i2] = start += 1 << eb[i2 - 1];
  }
  var r = new i32(b[30]);
  for (var i2 = 1; i2 < 30; ++i2) {
    for (var j = b[i2]; j < b[i2 + 1]; ++j) {
      r[j] = j - b[i2] << 5 | i2;
    }
  }
  return { b, r };
};
var _a = freb(fleb, 2);
var fl = _a.b;
var revfl = _a.r;
fl[28] = 258, revfl[258] = 28;
var _b = freb(fdeb, 0);
var fd = _b.b;
var revfd = _b.r;
var rev = new u16(32768);
for (i = 0; i < 32768; ++i) {
  x = (i & 43690) >> 1 | (i & 21845) << 1;
  x = (x & 52428) >> 2 | (x & 13107) << 2;
  x = (x & 61680) >> 4 | (x & 3855) << 4;
  rev[i] = ((x & 65280) >> 8 | (x & 255) << 8) >> 1;
}
var x;
var i;
var hMap = (function(cd, mb, r) {
  var s = cd.length;
  var i2 = 0;
  var l = new u16(mb);
  for (; i2 < s; ++i2) {
    if (cd[i2])
      ++l[cd[i2] - 1];
  }
  var le = new u16(mb);
  for (i2 = 1; i2 < mb; ++i2) {
    le[i2] = le[i2 - 1] + l[i2 - 1] << 1;
  }
  var co;
  if (r) {
    co = new u16(1 << mb);
    var rvb = 15 - mb;
    for (i2 = 0; i2 < s; ++i2) {
      if (cd[i2]) {
        var sv = i2 << 4 | cd[i2];
        var r_1 = mb - cd[i2];
        var v = le[cd[i2] - 1]++ << r_1;
        for (var m = v | (1 << r_1) - 1; v <= m; ++v) {
          co[rev[v] >> rvb] = sv;
        }
      }
    }
  } else {
    co = new u16(s);
    for (i2 = 0; i2 < s; ++i2) {
      if (cd[i2]) {
        co[i2] = rev[le[cd[i2] - 1]++] >> 15 - cd[i2];
      }
    }
  }
  return co;
});
var flt = new u8(288);
for (i = 0; i < 144; ++i)
  flt[i] = 8;
var i;
for (i = 144; i < 256; ++i)
  flt[i] = 9;
var i;
for (i = 256; i < 280; ++i)
  flt[i] = 7;
var i;
for (i = 280; i < 288; ++i)
  flt[i] = 8;
var i;
var fdt = new u8(32);
for (i = 0; i < 32; ++i)
  fdt[i] = 5;
var i;
var flm = /* @__PURE__ */ hMap(flt, 9, 0);
var flrm = /* @__PURE__ */ hMap(flt, 9, 1);
var fdm = /* @__PURE__ */ hMap(fdt, 5, 0);
var fdrm = /* @__PURE__ */ hMap(fdt, 5, 1);
var max = function(a) {
  var m = a[0];
  for (var i2 = 1; i2 < a.length; ++i2) {
    if (a[i2] > m)
      m = a[i2];
  }
  return m;
};
var bits = function(d, p, m) {
  var o = p / 8 | 0;
  return (d[o] | d[o + 1] << 8) >> (p & 7) & m;
};
var bits16 = function(d, p) {
  var o = p / 8 | 0;
  return (d[o] | d[o + 1] << 8 | d[o + 2] << 16) >> (p & 7);
};
var shft = function(p) {
  return (p + 7) / 8 | 0;
};
var slc = function(v, s, e) {
  if (s == null || s < 0)
    s = 0;
  if (e == null || e > v.length)
    e = v.length;
  return new u8(v.subarray(s, e));
};
var ec = [
  "unexpected EOF",
  "invalid block type",
  "invalid length/literal",
  "invalid distance",
  "stream finished",
  "no stream handler",
  ,
  // determined by compression function
  "no callback",
  "invalid UTF-8 data",
  "extra field too long",
  "date not in range 1980-2099",
  "filename too long",
  "stream finishing",
  "invalid zip data"
  // determined by unknown compression method
];
var err = function(ind, msg, nt) {
  var e = new Error(msg || ec[ind]);
  e.code = ind;
  if (Error.captureStackTrace)
    Error.captureStackTrace(e, err);
  if (!nt)
    throw e;
  return e;
};
var inflt = function(dat, st, buf, dict) {
  var sl = dat.length, dl = dict ? dict.length : 0;
  if (!sl || st.f && !st.l)
    return buf || new u8(0);
  var noBuf = !buf;
  var resize = noBuf || st.i != 2;
  var noSt = st.i;
  if (noBuf)
    buf = new u8(sl * 3);
  var cbuf = function(l2) {
    var bl = buf.length;
    if (l2 > bl) {
      var nbuf = new u8(Math.max(bl * 2, l2));
      nbuf.set(buf);
      buf = nbuf;
    }
  };
  var final = st.f || 0, pos = st.p || 0, bt = st.b || 0, lm = st.l, dm = st.d, lbt = st.m, dbt = st.n;
  var tbts = sl * 8;
  do {
    if (!lm) {
      final = bits(dat, pos, 1);
      var type = bits(dat, pos + 1, 3);
      pos += 3;
      if (!type) {
        var s = shft(pos) + 4, l = dat[s - 4] | dat[s - 3] << 8, t = s + l;
        if (t > sl) {
          if (noSt)
            err(0);
          break;
        }
        if (resize)
          cbuf(bt + l);
        buf.set(dat.subarray(s, t), bt);
        st.b = bt += l, st.p = pos = t * 8, st.f = final;
        continue;
      } else if (type == 1)
        lm = flrm, dm = fdrm, lbt = 9, dbt = 5;
      else if (type == 2) {
        var hLit = bits(dat, pos, 31) + 257, hcLen = bits(dat, pos + 10, 15) + 4;
        var tl = hLit + bits(dat, pos + 5, 31) + 1;
        pos += 14;
        var ldt = new u8(tl);
        var clt = new u8(19);
        for (var i2 = 0; i2 < hcLen; ++i2) {
          clt[clim[i2]] = bits(dat, pos + i2 * 3, 7);
        }
        pos += hcLen * 3;
        var clb = max(clt), clbmsk = (1 << clb) - 1;
        var clm = hMap(clt, clb, 1);
        for (var i2 = 0; i2 < tl; ) {
          var r = clm[bits(dat, pos, clbmsk)];
          pos += r & 15;
          var s = r >> 4;
          if (s < 16) {
            ldt[i2++] = s;
          } else {
            var c = 0, n = 0;
            if (s == 16)
              n = 3 + bits(dat, pos, 3), pos += 2, c = ldt[i2 - 1];
            else if (s == 17)
              n = 3 + bits(dat, pos, 7), pos += 3;
            else if (s == 18)
              n = 11 + bits(dat, pos, 127), pos += 7;
            while (n--)
              ldt[i2++] = c;
          }
        }
        var lt = ldt.subarray(0, hLit), dt = ldt.subarray(hLit);
        lbt = max(lt);
        dbt = max(dt);
        lm = hMap(lt, lbt, 1);
        dm = hMap(dt, dbt, 1);
      } else
        err(1);
      if (pos > tbts) {
        if (noSt)
          err(0);
        break;
      }
    }
    if (resize)
      cbuf(bt + 131072);
    var lms = (1 << lbt) - 1, dms = (1 << dbt) - 1;
    var lpos = pos;
    for (; ; lpos = pos) {
      var c = lm[bits16(dat, pos) & lms], sym = c >> 4;
      pos += c & 15;
      if (pos > tbts) {
        if (noSt)
          err(0);
        break;
      }
      if (!c)
        err(2);
      if (sym < 256)
        buf[bt++] = sym;
      else if (sym == 256) {
        lpos = pos, lm = null;
        break;
      } else {
        var add = sym - 254;
        if (sym > 264) {
          var i2 = sym - 257, b = fleb[i2];
          add = bits(dat, pos, (1 << b) - 1) + fl[i2];
          pos += b;
        }
        var d = dm[bits16(dat, pos) & dms], dsym = d >> 4;
        if (!d)
          err(3);
        pos += d & 15;
        var dt = fd[dsym];
        if (dsym > 3) {
          var b = fdeb[dsym];
          dt += bits16(dat, pos) & (1 << b) - 1, pos += b;
        }
        if (pos > tbts) {
          if (noSt)
            err(0);
          break;
        }
        if (resize)
          cbuf(bt + 131072);
        var end = bt + add;
        if (bt < dt) {
          var shift = dl - dt, dend = Math.min(dt, end);
          if (shift + bt < 0)
            err(3);
          for (; bt < dend; ++bt)
            buf[bt] = dict[shift + bt];
        }
        for (; bt < end; ++bt)
          buf[bt] = buf[bt - dt];
      }
    }
    st.l = lm, st.p = lpos, st.b = bt, st.f = final;
    if (lm)
      final = 1, st.m = lbt, st.d = dm, st.n = dbt;
  } while (!final);
  return bt != buf.length && noBuf ? slc(buf, 0, bt) : buf.subarray(0, bt);
};
var wbits = function(d, p, v) {
  v <<= p & 7;
  var o = p / 8 | 0;
  d[o] |= v;
  d[o + 1] |= v >> 8;
};
var wbits16 = function(d, p, v) {
  v <<= p & 7;
  var o = p / 8 | 0;
  d[o] |= v;
  d[o + 1] |= v >> 8;
  d[o + 2] |= v >> 16;
};
var hTree = function(d, mb) {
  var t = [];
  for (var i2 = 0; i2 < d.length; ++i2) {
    if (d[i2])
      t.push({ s: i2, f: d[i2] });
  }
  var s = t.length;
  var t2 = t.slice();
  if (!s)
    return { t: et, l: 0 };
  if (s == 1) {
    var v = new u8(t[0].s + 1);
    v[t[0].s] = 1;
    return { t: v, l: 1 };
  }
  t.sort(function(a, b) {
    return a.f - b.f;
  });
  t.push({ s: -1, f: 25001 });
  var l = t[0], r = t[1], i0 = 0, i1 = 1, i22 = 2;
  t[0] = { s: -1, f: l.f + r.f, l, r };
  while (i1 != s - 1) {
    l = t[t[i0].f < t[i22].f ? i0++ : i22++];
    r = t[i0 != i1 && t[i0].f < t[i22].f ? i0++ : i22++];
    t[i1++] = { s: -1, f: l.f + r.f, l, r };
  }
  var maxSym = t2[0].s;
  for (var i2 = 1; i2 < s; ++i2) {
    if (t2[i2].s > maxSym)
      maxSym = t2[i2].s;
  }
  var tr = new u16(maxSym + 1);
  var mbt = ln(t[i1 - 1], tr, 0);
  if (mbt > mb) {
    var i2 = 0, dt = 0;
    var lft = mbt - mb, cst = 1 << lft;
    t2.sort(function(a, b) {
      return tr[b.s] - tr[a.s] || a.f - b.f;
    });
    for (; i2 < s; ++i2) {
      var i2_1 = t2[i2].s;
      if (tr[i2_1] > mb) {
        dt += cst - (1 << mbt - tr[i2_1]);
        tr[i2_1] = mb;
      } else
        break;
    }
    dt >>= lft;
    while (dt > 0) {
      var i2_2 = t2[i2].s;
      if (tr[i2_2] < mb)
        dt -= 1 << mb - tr[i2_2]++ - 1;
      else
        ++i2;
    }
    for (; i2 >= 0 && dt; --i2) {
      var i2_3 = t2[i2].s;
      if (tr[i2_3] == mb) {
        --tr[i2_3];
        ++dt;
      }
    }
    mbt = mb;
  }
  return { t: new u8(tr), l: mbt };
};
var ln = function(n, l, d) {
  return n.s == -1 ? Math.max(ln(n.l, l, d + 1), ln(n.r, l, d + 1)) : l[n.s] = d;
};
var lc = function(c) {
  var s = c.length;
  while (s && !c[--s])
    ;
  var cl = new u16(++s);
  var cli = 0, cln = c[0], cls = 1;
  var w = function(v) {
    cl[cli++] = v;
  };
  for (var i2 = 1; i2 <= s; ++i2) {
    if (c[i2] == cln && i2 != s)
      ++cls;
    else {
      if (!cln && cls > 2) {
        for (; cls > 138; cls -= 138)
          w(32754);
        if (cls > 2) {
          w(cls > 10 ? cls - 11 << 5 | 28690 : cls - 3 << 5 | 12305);
          cls = 0;
        }
      } else if (cls > 3) {
        w(cln), --cls;
        for (; cls > 6; cls -= 6)
          w(8304);
        if (cls > 2)
          w(cls - 3 << 5 | 8208), cls = 0;
      }
      while (cls--)
        w(cln);
      cls = 1;
      cln = c[i2];
    }
  }
  return { c: cl.subarray(0, cli), n: s };
};
var clen = function(cf, cl) {
  var l = 0;
  for (var i2 = 0; i2 < cl.length; ++i2)
    l += cf[i2] * cl[i2];
  return l;
};
var wfblk = function(out, pos, dat) {
  var s = dat.length;
  var o = shft(pos + 2);
  out[o] = s & 255;
  out[o + 1] = s >> 8;
  out[o + 2] = out[o] ^ 255;
  out[o + 3] = out[o + 1] ^ 255;
  for (var i2 = 0; i2 < s; ++i2)
    out[o + i2 + 4] = dat[i2];
  return (o + 4 + s) * 8;
};
var wblk = function(dat, out, final, syms, lf, df, eb, li, bs, bl, p) {
  wbits(out, p++, final);
  ++lf[256];
  var _a2 = hTree(lf, 15), dlt = _a2.t, mlb = _a2.l;
  var _b2 = hTree(df, 15), ddt = _b2.t, mdb = _b2.l;
  var _c = lc(dlt), lclt = _c.c, nlc = _c.n;
  var _d = lc(ddt), lcdt = _d.c, ndc = _d.n;
  var lcfreq = new u16(19);
  for (var i2 = 0; i2 < lclt.length; ++i2)
    ++lcfreq[lclt[i2] & 31];
  for (var i2 = 0; i2 < lcdt.length; ++i2)
    ++lcfreq[lcdt[i2] & 31];
  var _e = hTree(lcfreq, 7), lct = _e.t, mlcb = _e.l;
  var nlcc = 19;
  for (; nlcc > 4 && !lct[clim[nlcc - 1]]; --nlcc)
    ;
  var flen = bl + 5 << 3;
  var ftlen = clen(lf, flt) + clen(df, fdt) + eb;
  var dtlen = clen(lf, dlt) + clen(df, ddt) + eb + 14 + 3 * nlcc + clen(lcfreq, lct) + 2 * lcfreq[16] + 3 * lcfreq[17] + 7 * lcfreq[18];
  if (bs >= 0 && flen <= ftlen && flen <= dtlen)
    return wfblk(out, p, dat.subarray(bs, bs + bl));
  var lm, ll, dm, dl;
  wbits(out, p, 1 + (dtlen < ftlen)), p += 2;
  if (dtlen < ftlen) {
    lm = hMap(dlt, mlb, 0), ll = dlt, dm = hMap(ddt, mdb, 0), dl = ddt;
    var llm = hMap(lct, mlcb, 0);
    wbits(out, p, nlc - 257);
    wbits(out, p + 5, ndc - 1);
    wbits(out, p + 10, nlcc - 4);
    p += 14;
    for (var i2 = 0; i2 < nlcc; ++i2)
      wbits(out, p + 3 * i2, lct[clim[i2]]);
    p += 3 * nlcc;
    var lcts = [lclt, lcdt];
    for (var it = 0; it < 2; ++it) {
      var clct = lcts[it];
      for (var i2 = 0; i2 < clct.length; ++i2) {
        var len = clct[i2] & 31;
        wbits(out, p, llm[len]), p += lct[len];
        if (len > 15)
          wbits(out, p, clct[i2] >> 5 & 127), p += clct[i2] >> 12;
      }
    }
  } else {
    lm = flm, ll = flt, dm = fdm, dl = fdt;
  }
  for (var i2 = 0; i2 < li; ++i2) {
    var sym = syms[i2];
    if (sym > 255) {
      var len = sym >> 18 & 31;
      wbits16(out, p, lm[len + 257]), p += ll[len + 257];
      if (len > 7)
        wbits(out, p, sym >> 23 & 31), p += fleb[len];
      var dst = sym & 31;
      wbits16(out, p, dm[dst]), p += dl[dst];
      if (dst > 3)
        wbits16(out, p, sym >> 5 & 8191), p += fdeb[dst];
    } else {
      wbits16(out, p, lm[sym]), p += ll[sym];
    }
  }
  wbits16(out, p, lm[256]);
  return p + ll[256];
};
var deo = /* @__PURE__ */ new i32([65540, 131080, 131088, 131104, 262176, 1048704, 1048832, 2114560, 2117632]);
var et = /* @__PURE__ */ new u8(0);
var dflt = function(dat, lvl, plvl, pre, post, st) {
  var s = st.z || dat.length;
  var o = new u8(pre + s + 5 * (1 + Math.ceil(s / 7e3)) + post);
  var w = o.subarray(pre, o.length - post);
  var lst = st.l;
  var pos = (st.r || 0) & 7;
  if (lvl) {
    if (pos)
      w[0] = st.r >> 3;
    var opt = deo[lvl - 1];
    var n = opt >> 13, c = opt & 8191;
    var msk_1 = (1 << plvl) - 1;
    var prev = st.p || new u16(32768), head = st.h || new u16(msk_1 + 1);
    var bs1_1 = Math.ceil(plvl / 3), bs2_1 = 2 * bs1_1;
    var hsh = function(i3) {
      return (dat[i3] ^ dat[i3 + 1] << bs1_1 ^ dat[i3 + 2] << bs2_1) & msk_1;
    };
    var syms = new i32(25e3);
    var lf = new u16(288), df = new u16(32);
    var lc_1 = 0, eb = 0, i2 = st.i || 0, li = 0, wi = st.w || 0, bs = 0;
    for (; i2 + 2 < s; ++i2) {
      var hv = hsh(i2);
      var imod = i2 & 32767, pimod = head[hv];
      prev[imod] = pimod;
      head[hv] = imod;
      if (wi <= i2) {
        var rem = s - i2;
        if ((lc_1 > 7e3 || li > 24576) && (rem > 423 || !lst)) {
          pos = wblk(dat, w, 0, syms, lf, df, eb, li, bs, i2 - bs, pos);
          li = lc_1 = eb = 0, bs = i2;
          for (var j = 0; j < 286; ++j)
            lf[j] = 0;
          for (var j = 0; j < 30; ++j)
            df[j] = 0;
        }
        var l = 2, d = 0, ch_1 = c, dif = imod - pimod & 32767;
        if (rem > 2 && hv == hsh(i2 - dif)) {
          var maxn = Math.min(n, rem) - 1;
          var maxd = Math.min(32767, i2);
          var ml = Math.min(258, rem);
          while (dif <= maxd && --ch_1 && imod != pimod) {
            if (dat[i2 + l] == dat[i2 + l - dif]) {
              var nl = 0;
              for (; nl < ml && dat[i2 + nl] == dat[i2 + nl - dif]; ++nl)
                ;
              if (nl > l) {
                l = nl, d = dif;
                if (nl > maxn)
                  break;
                var mmd = Math.min(dif, nl - 2);
                var md = 0;
                for (var j = 0; j < mmd; ++j) {
                  var ti = i2 - dif + j & 32767;
                  var pti = prev[ti];
                  var cd = ti - pti & 32767;
                  if (cd > md)
                    md = cd, pimod = ti;
                }
              }
            }
            imod = pimod, pimod = prev[imod];
            dif += imod - pimod & 32767;
          }
        }
        if (d) {
          syms[li++] = 268435456 | revfl[l] << 18 | revfd[d];
          var lin = revfl[l] & 31, din = revfd[d] & 31;
          eb += fleb[lin] + fdeb[din];
          ++lf[257 + lin];
          ++df[din];
          wi = i2 + l;
          ++lc_1;
        } else {
          syms[li++] = dat[i2];
          ++lf[dat[i2]];
        }
      }
    }
    for (i2 = Math.max(i2, wi); i2 < s; ++i2) {
      syms[li++] = dat[i2];
      ++lf[dat[i2]];
    }
    pos = wblk(dat, w, lst, syms, lf, df, eb, li, bs, i2 - bs, pos);
    if (!lst) {
      st.r = pos & 7 | w[pos / 8 | 0] << 3;
      pos -= 7;
      st.h = head, st.p = prev, st.i = i2, st.w = wi;
    }
  } else {
    for (var i2 = st.w || 0; i2 < s + lst; i2 += 65535) {
      var e = i2 + 65535;
      if (e >= s) {
        w[pos / 8 | 0] = lst;
        e = s;
      }
      pos = wfblk(w, pos + 1, dat.subarray(i2, e));
    }
    st.i = s;
  }
  return slc(o, 0, pre + shft(pos) + post);
};
var adler = function() {
  var a = 1, b = 0;
  return {
    p: function(d) {
      var n = a, m = b;
      var l = d.length | 0;
      for (var i2 = 0; i2 != l; ) {
        var e = Math.min(i2 + 2655, l);
        for (; i2 < e; ++i2)
          m += n += d[i2];
        n = (n & 65535) + 15 * (n >> 16), m = (m & 65535) + 15 * (m >> 16);
      }
      a = n, b = m;
    },
    d: function() {
      a %= 65521, b %= 65521;
      return (a & 255) << 24 | (a & 65280) << 8 | (b & 255) << 8 | b >> 8;
    }
  };
};
var dopt = function(dat, opt, pre, post, st) {
  if (!st) {
    st = { l: 1 };
    if (opt.dictionary) {
      var dict = opt.dictionary.subarray(-32768);
      var newDat = new u8(dict.length + dat.length);
      newDat.set(dict);
      newDat.set(dat, dict.length);
      dat = newDat;
      st.w = dict.length;
    }
  }
  return dflt(dat, opt.level == null ? 6 : opt.level, opt.mem == null ? st.l ? Math.ceil(Math.max(8, Math.min(13, Math.log(dat.length))) * 1.5) : 20 : 12 + opt.mem, pre, post, st);
};
var wbytes = function(d, b, v) {
  for (; v; ++b)
    d[b] = v, v >>>= 8;
};
var zlh = function(c, o) {
  var lv = o.level, fl2 = lv == 0 ? 0 : lv < 6 ? 1 : lv == 9 ? 3 : 2;
  c[0] = 120, c[1] = fl2 << 6 | (o.dictionary && 32);
  c[1] |= 31 - (c[0] << 8 | c[1]) % 31;
  if (o.dictionary) {
    var h = adler();
    h.p(o.dictionary);
    wbytes(c, 2, h.d());
  }
};
var zls = function(d, dict) {
  if ((d[0] & 15) != 8 || d[0] >> 4 > 7 || (d[0] << 8 | d[1]) % 31)
    err(6, "invalid zlib data");
  if ((d[1] >> 5 & 1) == +!dict)
    err(6, "invalid zlib data: " + (d[1] & 32 ? "need" : "unexpected") + " dictionary");
  return (d[1] >> 3 & 4) + 2;
};
var Inflate = /* @__PURE__ */ (function() {
  function Inflate2(opts, cb) {
    if (typeof opts == "function")
      cb = opts, opts = {};
    this.ondata = cb;
    var dict = opts && opts.dictionary && opts.dictionary.subarray(-32768);
    this.s = { i: 0, b: dict ? dict.length : 0 };
    this.o = new u8(32768);
    this.p = new u8(0);
    if (dict)
      this.o.set(dict);
  }
  Inflate2.prototype.e = function(c) {
    if (!this.ondata)
      err(5);
    if (this.d)
      err(4);
    if (!this.p.length)
      this.p = c;
    else if (c.length) {
      var n = new u8(this.p.length + c.length);
      n.set(this.p), n.set(c, this.p.length), this.p = n;
    }
  };
  Inflate2.prototype.c = function(final) {
    this.s.i = +(this.d = final || false);
    var bts = this.s.b;
    var dt = inflt(this.p, this.s, this.o);
    this.ondata(slc(dt, bts, this.s.b), this.d);
    this.o = slc(dt, this.s.b - 32768), this.s.b = this.o.length;
    this.p = slc(this.p, this.s.p / 8 | 0), this.s.p &= 7;
  };
  Inflate2.prototype.push = function(chunk, final) {
    this.e(chunk), this.c(final);
  };
  return Inflate2;
})();
function zlibSync(data, opts) {
  if (!opts)
    opts = {};
  var a = adler();
  a.p(data);
  var d = dopt(data, opts, opts.dictionary ? 6 : 2, 4);
  return zlh(d, opts), wbytes(d, d.length - 4, a.d()), d;
}
var Unzlib = /* @__PURE__ */ (function() {
  function Unzlib2(opts, cb) {
    Inflate.call(this, opts, cb);
    this.v = opts && opts.dictionary ? 2 : 1;
  }
  Unzlib2.prototype.push = function(chunk, final) {
    Inflate.prototype.e.call(this, chunk);
    if (this.v) {
      if (this.p.length < 6 && !final)
        return;
      this.p = this.p.subarray(zls(this.p, this.v - 1)), this.v = 0;
    }
    if (final) {
      if (this.p.length < 4)
        err(6, "invalid zlib data");
      this.p = this.p.subarray(0, -4);
    }
    Inflate.prototype.c.call(this, final);
  };
  return Unzlib2;
})();
var td = typeof TextDecoder != "undefined" && /* @__PURE__ */ new TextDecoder();
var tds = 0;
try {
  td.decode(et, { stream: true });
  tds = 1;
} catch (e) {
}

// src/protocol.ts
var headerLen = 9;
var maxPayload = 1048576;
var maxCompressed = 4194304;
var maxInflated = headerLen + maxPayload;
var compressThreshold = 256;
var utf8Encoder = new TextEncoder();
var utf8Decoder = new TextDecoder();
function encodeFrame(opcode, correlationId, body) {
  const payload = body === void 0 ? new Uint8Array(0) : utf8Encoder.encode(JSON.stringify(body));
  if (payload.length > maxPayload) {
    throw new Error(`datasole: payload of ${payload.length} bytes exceeds ${maxPayload}`);
  }
  const frame = new Uint8Array(headerLen + payload.length);
  const view = new DataView(frame.buffer);
  frame[0] = opcode;
  view.setUint32(1, correlationId >>> 0);
  view.setUint32(5, payload.length);
  frame.set(payload, headerLen);
  return frame;
}
function wireBytes(frame) {
  return frame.length > compressThreshold ? zlibSync(frame, { level: 6 }) : frame;
}
function decodeMessage(message) {
  let bytes = message;
  if (message.length >= 2 && message[0] === 120) {
    bytes = inflate(message);
    if (!bytes) return null;
  }
  if (bytes.length < headerLen) return null;
  const opcode = bytes[0];
  if (opcode < 1 /* RpcReq */ || opcode > 11 /* CrdtState */) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(5);
  if (len > maxPayload || bytes.length < headerLen + len) return null;
  return { opcode, correlationId: view.getUint32(1), payload: bytes.subarray(headerLen, headerLen + len) };
}
function parsePayload(payload) {
  try {
    return JSON.parse(utf8Decoder.decode(payload));
  } catch {
    return void 0;
  }
}
function inflate(message) {
  if (message.length > maxCompressed || message.length < 6) return null;
  const chunks = [];
  let total = 0;
  try {
    const stream = new Unzlib((chunk) => {
      total += chunk.length;
      if (total > maxInflated) throw new Error("inflated message too large");
      chunks.push(chunk);
    });
    const step = 1024;
    for (let i2 = 0; i2 < message.length; i2 += step) {
      const end = Math.min(i2 + step, message.length);
      stream.push(message.subarray(i2, end), end === message.length);
    }
  } catch {
    return null;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  const t = message.length - 4;
  const want = (message[t] << 24 | message[t + 1] << 16 | message[t + 2] << 8 | message[t + 3]) >>> 0;
  return adler32(out) === want ? out : null;
}
function adler32(data) {
  let a = 1;
  let b = 0;
  for (let i2 = 0; i2 < data.length; ) {
    const end = Math.min(i2 + 5552, data.length);
    for (; i2 < end; i2++) {
      a += data[i2];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b << 16 | a) >>> 0;
}

// src/batch.ts
var subprotocolV1 = "datasole.v1";
var subprotocolBatch = "datasole.batch.v1";
var tokenPrefix = "datasole.token.";
var opBatch = 12;
var zlibFirstByte = 120;
function isBatch(message) {
  return message.length > 0 && message[0] === opBatch;
}
function uvarintLen(n) {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}
function putUvarint(out, at, n) {
  while (n >= 128) {
    out[at++] = n % 128 | 128;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}
function batchSize(messages) {
  let n = 0;
  for (const m of messages) n += uvarintLen(m.length) + m.length;
  return n;
}
function encodeBatch(messages) {
  const size = batchSize(messages);
  if (size > maxPayload) throw new Error(`datasole: batch payload of ${size} bytes exceeds ${maxPayload}`);
  const out = new Uint8Array(headerLen + size);
  const view = new DataView(out.buffer);
  out[0] = opBatch;
  view.setUint32(1, messages.length);
  view.setUint32(5, size);
  let at = headerLen;
  for (const m of messages) {
    at = putUvarint(out, at, m.length);
    out.set(m, at);
    at += m.length;
  }
  return out;
}
var maxVarintBytes = 4;
function decodeBatch(message) {
  if (message.length < headerLen || message[0] !== opBatch) return null;
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const size = view.getUint32(5);
  if (size > maxPayload || message.length !== headerLen + size) return null;
  const frames = [];
  let at = headerLen;
  while (at < message.length) {
    let len = 0;
    let shift = 1;
    let i2 = 0;
    for (; ; ) {
      if (at >= message.length || i2 === maxVarintBytes) return null;
      const b = message[at++];
      len += (b & 127) * shift;
      shift *= 128;
      i2++;
      if (b < 128) break;
    }
    if (len === 0 || len > message.length - at) return null;
    const item = message.subarray(at, at + len);
    at += len;
    if (item[0] !== zlibFirstByte && (item[0] < 1 || item[0] > 11)) return null;
    const f = decodeMessage(item);
    if (!f) return null;
    frames.push(f);
  }
  return frames;
}
var Outbox = class {
  constructor(write) {
    this.write = write;
    this.queue = [];
    this.size = 0;
    this.scheduled = false;
    /** batching is set once the server selected datasole.batch.v1. */
    this.batching = false;
  }
  /** send transmits an uncompressed frame, compressing it by the 256-byte rule. */
  send(frame) {
    const message = wireBytes(frame);
    if (!this.batching) {
      this.write(message);
      return;
    }
    const cost = uvarintLen(message.length) + message.length;
    if (this.size + cost > maxPayload) this.flush();
    this.queue.push(message);
    this.size += cost;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }
  /** flush sends whatever is queued now. */
  flush() {
    this.scheduled = false;
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    this.size = 0;
    this.write(q.length === 1 ? q[0] : encodeBatch(q));
  }
  /** clear drops queued frames (the connection is gone). */
  clear() {
    this.queue = [];
    this.size = 0;
  }
};
function tokenProtocol(token) {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)) {
    throw new TypeError(
      'datasole: auth.token cannot be sent as a subprotocol (it has characters outside the HTTP token set, e.g. "/", "=" or spaces); send it as a query parameter instead'
    );
  }
  return tokenPrefix + token;
}
function receive(message, batching) {
  if (batching && isBatch(message)) return decodeBatch(message) ?? [];
  const f = decodeMessage(message);
  return f ? [f] : [];
}

// src/subscription.ts
function unsubscriber(stop) {
  const fn = (() => {
    stop();
  });
  fn.unsubscribe = fn;
  return fn;
}
function deliver(listeners, value) {
  for (const fn of [...listeners]) {
    try {
      fn(value);
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
  }
}

// src/crdt.ts
var forbiddenKeys = /* @__PURE__ */ new Set(["__proto__", "constructor", "prototype"]);
var maxMapEntries = 1e4;
function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function newer(ts, node, curTs, curNode) {
  return ts > curTs || ts === curTs && node > curNode;
}
var Crdt = class {
  constructor(key, nodeId, send) {
    this.key = key;
    this.nodeId = nodeId;
    this.send = send;
    /** version counts local changes; it is not comparable across replicas. */
    this.version = 0;
    this.listeners = /* @__PURE__ */ new Set();
  }
  /** subscribe calls fn now and after every change; call the result to stop. */
  subscribe(fn) {
    this.listeners.add(fn);
    fn(this.value);
    return unsubscriber(() => this.listeners.delete(fn));
  }
  changed() {
    this.version++;
    deliver(this.listeners, this.value);
  }
  emit(op, timestamp = Date.now()) {
    this.send({ type: this.type, nodeId: this.nodeId, timestamp, ...op });
  }
};
var PNCounter = class extends Crdt {
  constructor() {
    super(...arguments);
    this.type = "pn-counter";
    this.inc = /* @__PURE__ */ new Map();
    this.dec = /* @__PURE__ */ new Map();
  }
  get value() {
    let total = 0;
    for (const n of this.inc.values()) total += n;
    for (const n of this.dec.values()) total -= n;
    return total;
  }
  /** increment adds n (default 1) and sends the op. */
  increment(n = 1) {
    this.add(this.inc, n, "increment");
  }
  /** decrement subtracts n (default 1) and sends the op. */
  decrement(n = 1) {
    this.add(this.dec, n, "decrement");
  }
  add(m, n, op) {
    if (!Number.isFinite(n) || n <= 0) throw new RangeError("datasole: counter amount must be a positive number");
    m.set(this.nodeId, (m.get(this.nodeId) ?? 0) + n);
    this.changed();
    this.emit({ op, value: n });
  }
  merge(state) {
    const vector = state.metadata?.vector;
    if (!isObject(vector)) return false;
    const a = mergeMax(this.inc, vector.increments);
    const b = mergeMax(this.dec, vector.decrements);
    if (a || b) this.changed();
    return a || b;
  }
};
function mergeMax(local, remote) {
  if (!isObject(remote)) return false;
  let changed = false;
  for (const [node, n] of Object.entries(remote)) {
    if (typeof n !== "number" || !Number.isFinite(n)) continue;
    if (n > (local.get(node) ?? 0)) {
      local.set(node, n);
      changed = true;
    }
  }
  return changed;
}
var LWWRegister = class extends Crdt {
  constructor(key, nodeId, send, initial) {
    super(key, nodeId, send);
    this.type = "lww-register";
    this.stamp = 0;
    this.writer = "";
    this.current = initial;
  }
  get value() {
    return this.current;
  }
  /** set writes v locally and sends the op. */
  set(v) {
    this.stamp = Math.max(Date.now(), this.stamp);
    this.writer = this.nodeId;
    this.current = v;
    this.changed();
    this.emit({ op: "set", value: v }, this.stamp);
  }
  merge(state) {
    const m = state.metadata;
    if (!m || typeof m.timestamp !== "number" || typeof m.version !== "number" || typeof m.nodeId !== "string") return false;
    if (!newer(m.timestamp, m.nodeId, this.stamp, this.writer)) return false;
    this.stamp = m.timestamp;
    this.writer = m.nodeId;
    this.current = state.value;
    this.changed();
    return true;
  }
};
var LWWMap = class extends Crdt {
  constructor() {
    super(...arguments);
    this.type = "lww-map";
    this.fields = /* @__PURE__ */ new Map();
  }
  get value() {
    const out = {};
    for (const [k, f] of this.fields) if (!f.deleted) out[k] = f.value;
    return out;
  }
  /** get returns one live field. */
  get(field) {
    const f = this.fields.get(field);
    return f && !f.deleted ? f.value : void 0;
  }
  /** set writes one field locally and sends the op. */
  set(field, v) {
    this.write(field, v, false);
    this.emit({ op: "set", key: field, value: v }, this.fields.get(field).timestamp);
  }
  /** delete removes one field locally (leaving a tombstone) and sends the op. */
  delete(field) {
    this.write(field, void 0, true);
    this.emit({ op: "remove", key: field }, this.fields.get(field).timestamp);
  }
  write(field, v, deleted) {
    if (forbiddenKeys.has(field)) throw new RangeError(`datasole: forbidden map field ${field}`);
    const timestamp = Math.max(Date.now(), this.fields.get(field)?.timestamp ?? 0);
    this.fields.set(field, { value: v, timestamp, nodeId: this.nodeId, deleted });
    this.changed();
  }
  merge(state) {
    const m = state.metadata;
    const value = state.value ?? {};
    if (!m || typeof m.timestamp !== "number" || !isObject(value)) return false;
    const stamps = isObject(m.fields) ? m.fields : Object.fromEntries(Object.keys(value).map((k) => [k, { timestamp: m.timestamp, nodeId: String(m.nodeId) }]));
    const names = Object.keys(stamps);
    if (names.length > maxMapEntries) return false;
    let changed = false;
    for (const k of names) {
      const s = stamps[k];
      if (forbiddenKeys.has(k) || !isObject(s) || typeof s.timestamp !== "number") continue;
      const node = typeof s.nodeId === "string" ? s.nodeId : "";
      const cur = this.fields.get(k);
      if (cur && !newer(s.timestamp, node, cur.timestamp, cur.nodeId)) continue;
      const deleted = s.deleted === true || !Object.prototype.hasOwnProperty.call(value, k);
      this.fields.set(k, { value: deleted ? void 0 : value[k], timestamp: s.timestamp, nodeId: node, deleted });
      changed = true;
    }
    if (changed) this.changed();
    return changed;
  }
};
var CrdtStore = class {
  constructor(nodeId, send) {
    this.nodeId = nodeId;
    this.send = send;
    this.replicas = /* @__PURE__ */ new Map();
  }
  register(key, type, initial) {
    const existing = this.replicas.get(key);
    if (existing) {
      if (existing.type !== type) throw new Error(`datasole: CRDT ${key} is already a ${existing.type}`);
      return existing;
    }
    const send = (op) => this.send(key, op);
    let c;
    switch (type) {
      case "pn-counter":
        c = new PNCounter(key, this.nodeId, send);
        break;
      case "lww-register":
        c = new LWWRegister(key, this.nodeId, send, initial);
        break;
      case "lww-map":
        c = new LWWMap(key, this.nodeId, send);
        break;
      default:
        throw new Error(`datasole: unknown CRDT type ${String(type)}`);
    }
    this.replicas.set(key, c);
    return c;
  }
  /** get returns the replica registered under key. */
  get(key) {
    return this.replicas.get(key);
  }
  /** merge folds a CRDT_STATE into the replica for key, if one is registered. */
  merge(key, state) {
    this.replicas.get(key)?.merge(state);
  }
};

// src/errors.ts
var DatasoleError = class extends Error {
  constructor(message, extra = {}) {
    super(message);
    this.name = "DatasoleError";
    this.code = extra.code;
    this.data = extra.data;
    this.retryAfter = extra.retryAfter;
    this.status = extra.status;
    this.closeCode = extra.closeCode;
  }
};
function closeError(code, reason) {
  const why = reason ? ` ("${reason}")` : "";
  const e = (c, message) => new DatasoleError(message, { code: c, closeCode: code });
  switch (code) {
    case 4001:
      return e("session-expired", `Connection closed (4001): the session expired${why}; get a fresh credential (sign in again) and connect`);
    case 4003:
      return e("revoked", `Connection closed (4003): the server revoked this connection's credential${why}; sign in again before reconnecting`);
    case 1013:
      return e("over-capacity", `Connection closed (1013): the server is at its connection limit${why}; retry later`);
    case 1008:
      return e("policy", `Connection closed (1008): the server closed the connection for a policy violation${why}, e.g. too many rate-limited frames or reading too slowly`);
    case 1009:
      return e("too-big", `Connection closed (1009): a message was larger than the server accepts${why}`);
    case 1001:
      return e("server-closed", `Connection closed (1001): the server is shutting down${why}; reconnect later`);
  }
  return void 0;
}

// src/history.ts
var maxHeld = 1e4;
var maxStreamName = 1024;
function parsePos(v) {
  if (typeof v !== "object" || v === null) return void 0;
  const p = v;
  if (typeof p.s !== "string" || p.s.length === 0 || p.s.length > maxStreamName || typeof p.e !== "string") return void 0;
  if (!isOffset(p.o)) return void 0;
  return { s: p.s, e: p.e, o: p.o };
}
function parseAnswer(v) {
  if (typeof v !== "object" || v === null) return void 0;
  const a = v;
  if (a.visible === false) return { recovered: false, visible: false, e: "", o: 0 };
  if (typeof a.recovered !== "boolean") return void 0;
  const e = a.e === void 0 ? "" : a.e;
  const o = a.o === void 0 ? 0 : a.o;
  if (typeof e !== "string" || !isOffset(o)) return void 0;
  return { recovered: a.recovered, visible: true, e, o };
}
function isOffset(v) {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
var Streams = class {
  constructor() {
    this.streams = /* @__PURE__ */ new Map();
  }
  /** size is the number of streams seen. */
  get size() {
    return this.streams.size;
  }
  /** position returns the stream's epoch and last delivered offset. */
  position(name) {
    const st = this.streams.get(name);
    return st && { e: st.epoch, o: st.offset };
  }
  /**
   * arrive takes an event with a position and returns the events to deliver now, in order,
   * and whether a recovery of its stream must start.
   */
  arrive(ev) {
    const p = ev.pos;
    const st = this.streams.get(p.s);
    if (!st) {
      this.streams.set(p.s, { epoch: p.e, offset: p.o, held: [], recovering: 0, asked: { epoch: p.e, offset: p.o } });
      return { deliver: [ev], recover: false };
    }
    if (p.e === st.epoch && p.o <= st.offset) return { deliver: [], recover: false };
    if (p.e === st.epoch && p.o === st.offset + 1) {
      st.offset = p.o;
      return { deliver: [ev, ...drain(st)], recover: false };
    }
    hold(st, ev);
    return { deliver: [], recover: st.recovering === 0 };
  }
  /**
   * positions returns what to ask for of the named streams (null: every stream seen) and
   * marks them as recovered by the call token.
   */
  positions(names, token) {
    const out = /* @__PURE__ */ new Map();
    for (const name of names ?? this.streams.keys()) {
      const st = this.streams.get(name);
      if (!st) continue;
      st.recovering = token;
      st.asked = { epoch: st.epoch, offset: st.offset };
      out.set(name, { e: st.epoch, o: st.offset });
    }
    return out;
  }
  /** abort ends the recovery of the named streams by call token without an answer (the call failed). */
  abort(names, token) {
    for (const name of names) {
      const st = this.streams.get(name);
      if (st && st.recovering === token) st.recovering = 0;
    }
  }
  /**
   * settle applies the server's answer for one stream, to the call token; the replayed
   * events arrived before it.
   */
  settle(name, a, token) {
    const st = this.streams.get(name);
    if (!st || st.recovering !== token) return { deliver: [], again: false };
    st.recovering = 0;
    if (!a.visible) return { deliver: [], again: false };
    if (!a.recovered) {
      st.epoch = a.e;
      st.offset = a.o;
      st.held = st.held.filter((e) => e.pos.e === st.epoch && e.pos.o > st.offset);
    }
    const deliver2 = drain(st);
    const moved = st.epoch !== st.asked.epoch || st.offset !== st.asked.offset;
    return { deliver: deliver2, again: st.held.length > 0 && moved, report: a.recovered };
  }
};
function hold(st, ev) {
  const o = ev.pos.o;
  let lo = 0;
  let hi = st.held.length;
  while (lo < hi) {
    const mid = lo + hi >>> 1;
    if (st.held[mid].pos.o < o) lo = mid + 1;
    else hi = mid;
  }
  if (lo < st.held.length && st.held[lo].pos.o === o) return;
  if (st.held.length >= maxHeld) return;
  st.held.splice(lo, 0, ev);
}
function drain(st) {
  const out = [];
  let i2 = 0;
  for (; i2 < st.held.length; i2++) {
    const e = st.held[i2];
    if (e.pos.e !== st.epoch || e.pos.o > st.offset + 1) break;
    if (e.pos.o === st.offset + 1) {
      st.offset++;
      out.push(e);
    }
  }
  if (i2 > 0) st.held.splice(0, i2);
  return out;
}

// src/link.ts
function openDirect(url, protocols, ev) {
  let done = false;
  let batching = false;
  const finish = (code, reason, error) => {
    if (done) return;
    done = true;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    out.clear();
    ev.close(code, reason, error);
  };
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  const out = new Outbox((m) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(m);
  });
  ws.onopen = () => {
    batching = out.batching = ws.protocol === subprotocolBatch;
    ev.open(ws.protocol);
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") return;
    for (const f of receive(new Uint8Array(m.data), batching)) {
      if (done) return;
      ev.frame(f);
    }
  };
  ws.onerror = () => {
  };
  ws.onclose = (c) => finish(c.code, c.reason);
  return {
    send(frame) {
      if (ws.readyState === WebSocket.OPEN) out.send(frame);
    },
    close(code, reason) {
      out.flush();
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
      finish(code, reason);
    }
  };
}
var WorkerUnavailable = class extends Error {
};
function openWorker(workerUrl, url, protocols, readyTimeout, ev) {
  let done = false;
  let ready = false;
  let worker = null;
  const finish = (code, reason, error, linger = 0) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const w = worker;
    if (linger) setTimeout(() => w?.terminate(), linger);
    else w?.terminate();
    ev.close(code, reason, error);
  };
  const timer = setTimeout(() => finish(1006, "worker did not start", new WorkerUnavailable("worker did not start")), readyTimeout);
  try {
    worker = new Worker(workerUrl);
  } catch (e) {
    queueMicrotask(() => finish(1006, "worker failed", new WorkerUnavailable(String(e))));
    return { send() {
    }, close: (code, reason) => finish(code, reason) };
  }
  worker.onerror = (e) => {
    e.preventDefault();
    finish(1006, "worker failed", ready ? new Error("worker error") : new WorkerUnavailable("worker script failed to load"));
  };
  worker.onmessage = (m) => {
    if (done) return;
    const msg = m.data;
    switch (msg?.type) {
      case "ready":
        ready = true;
        clearTimeout(timer);
        break;
      case "open":
        ev.open(String(msg.payload?.protocol ?? ""));
        break;
      case "message": {
        const p = msg.payload;
        ev.frame({ opcode: p.opcode, correlationId: p.correlationId, payload: p.payload });
        break;
      }
      case "close": {
        const p = msg.payload ?? {};
        finish(Number(p.code ?? 1006), String(p.reason ?? ""));
        break;
      }
    }
  };
  worker.postMessage({ type: "connect", payload: { url, protocols } });
  let queue = [];
  const flush = () => {
    const frames = queue;
    queue = [];
    if (!done && frames.length > 0) {
      worker.postMessage({ type: "frames", payload: { data: frames } }, frames.map((f) => f.buffer));
    }
  };
  return {
    send(frame) {
      if (done) return;
      if (queue.push(frame) === 1) queueMicrotask(flush);
    },
    close(code, reason) {
      flush();
      if (!done) worker.postMessage({ type: "disconnect", payload: { code, reason } });
      finish(code, reason, void 0, 1e3);
    }
  };
}

// src/presence.ts
var presenceMethod = "$ds.presence";
var presenceStatsMethod = "$ds.presence.stats";
var joinEvent = "$ds.join";
var leaveEvent = "$ds.leave";
function parseEntry(v) {
  if (typeof v !== "object" || v === null) return void 0;
  const e = v;
  if (typeof e.conn !== "string" || typeof e.user !== "string") return void 0;
  const out = { conn: e.conn, user: e.user };
  if (e.info !== void 0 && e.info !== null) out.info = e.info;
  return out;
}
function parseChange(v) {
  const e = parseEntry(v);
  const tag = v?.tag;
  if (!e || typeof tag !== "string") return void 0;
  return { tag, ...e };
}
function parseEntries(v) {
  const list = v?.entries;
  if (!Array.isArray(list)) return void 0;
  const out = [];
  for (const item of list) {
    const e = parseEntry(item);
    if (e) out.push(e);
  }
  return out;
}
function parseStats(v) {
  const s = v;
  if (typeof s?.conns !== "number" || typeof s.users !== "number") return void 0;
  return { conns: s.conns, users: s.users };
}

// src/probe.ts
var probeParam = "ds-probe";
var probeHeader = "Datasole-Protocol";
var answeredHeader = "Datasole-Probe";
function probeUrl(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.search = (u.search ? u.search + "&" : "?") + probeParam + "=1";
  return u.toString();
}
function endpoint(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.search = "";
  return u.toString();
}
function pageOrigin() {
  return typeof location !== "undefined" ? location.origin : "";
}
function failure(code, message, status) {
  return new DatasoleError(message, { code, status, closeCode: 1006 });
}
function explainStatus(status, t, answered) {
  const http = endpoint(t.wsUrl);
  switch (status) {
    case 204:
    case 200:
      if (answered === null) break;
      if (t.protocols) {
        return failure(
          "upgrade-failed",
          `Connection failed: the server at ${http} accepts the credential but did not complete the WebSocket handshake that offered it as a subprotocol; it may not support auth.sendAs "subprotocol" (send the token as a query parameter instead), or a proxy in between does not forward WebSocket upgrades`,
          status
        );
      }
      return failure(
        "upgrade-failed",
        `Connection failed: the server at ${http} would admit this page, but the WebSocket upgrade did not complete; something in between (a proxy or load balancer) may not forward WebSocket upgrades`,
        status
      );
    case 401:
      return failure(
        "unauthorized",
        t.token ? `Connection refused (HTTP 401): the server did not accept the credential in auth.token (wrong, expired or revoked); get a fresh one and connect again` : `Connection refused (HTTP 401): the server requires a credential and none was sent; pass one as auth.token (or sign in first when the server uses cookies)`,
        status
      );
    case 403:
      return failure(
        "forbidden-origin",
        `Connection refused (HTTP 403): the server refused this page's origin (${pageOrigin() || "unknown"}); add it to the server's Options.AllowedOrigins, or serve the page from the server's own origin`,
        status
      );
    case 404:
      return failure(
        "not-found",
        `Connection failed (HTTP 404): nothing answers at ${http}; the client's path option ("${t.path}") must equal the server's Options.Path, and the datasole handler must be mounted there`,
        status
      );
    case 408:
    case 500:
      return failure(
        "server-error",
        `Connection refused (HTTP ${status}): the server could not check the credential (its auth handler ${status === 408 ? "timed out" : "failed"}); see the server's log`,
        status
      );
    case 429:
      if (answered === "limited") break;
      return failure(
        "over-capacity",
        `Connection refused (HTTP 429): too many connections from this user or address (the server's MaxConnectionsPerUser or MaxConnectionsPerIP); close other tabs or raise the limit`,
        status
      );
    case 503:
      return failure(
        "over-capacity",
        `Connection refused (HTTP 503): the server is at its connection limit (Options.MaxConnections), starting, or shutting down; retry later`,
        status
      );
  }
  if (status >= 300 && status < 400) {
    return failure(
      "not-found",
      `Connection failed (HTTP ${status}): ${http} redirects elsewhere, so it is not the datasole endpoint; check the client's path option ("${t.path}") and where the handler is mounted`,
      status
    );
  }
  return failure(
    "connection-failed",
    `Connection failed (1006): the server refused the WebSocket upgrade and did not say why${status ? ` (its answer to a plain request was HTTP ${status})` : ""}`,
    status || void 0
  );
}
async function probe(t) {
  if (typeof fetch !== "function") return explainStatus(0, t, null);
  const url = probeUrl(t.wsUrl);
  const ctl = typeof AbortController === "function" ? new AbortController() : void 0;
  const timer = setTimeout(() => ctl?.abort(), t.timeout);
  try {
    const headers = {};
    if (t.protocols) headers[probeHeader] = t.protocols.join(", ");
    let res;
    try {
      res = await fetch(url, { credentials: "include", cache: "no-store", redirect: "manual", headers, signal: ctl?.signal });
    } catch (e) {
      if (ctl?.signal.aborted) return explainStatus(0, t, null);
      if (!await reachable(url, ctl?.signal)) {
        return failure(
          "unreachable",
          `Connection failed: the server at ${new URL(url).origin} could not be reached (not running, wrong URL or port, or the network is down)`
        );
      }
      return explainStatus(0, t, null);
    }
    if (res.type === "opaqueredirect") return explainStatus(302, t, null);
    return explainStatus(res.status, t, res.headers.get(answeredHeader));
  } finally {
    clearTimeout(timer);
  }
}
async function reachable(url, signal) {
  try {
    await fetch(url, { mode: "no-cors", credentials: "omit", cache: "no-store", signal });
    return true;
  } catch {
    return false;
  }
}

// node_modules/fast-json-patch/module/helpers.mjs
var __extends = /* @__PURE__ */ (function() {
  var extendStatics = function(d, b) {
    extendStatics = Object.setPrototypeOf || { __proto__: [] } instanceof Array && function(d2, b2) {
      d2.__proto__ = b2;
    } || function(d2, b2) {
      for (var p in b2) if (b2.hasOwnProperty(p)) d2[p] = b2[p];
    };
    return extendStatics(d, b);
  };
  return function(d, b) {
    extendStatics(d, b);
    function __() {
      this.constructor = d;
    }
    d.prototype = b === null ? Object.create(b) : (__.prototype = b.prototype, new __());
  };
})();
var _hasOwnProperty = Object.prototype.hasOwnProperty;
function hasOwnProperty(obj, key) {
  return _hasOwnProperty.call(obj, key);
}
function _objectKeys(obj) {
  if (Array.isArray(obj)) {
    var keys_1 = new Array(obj.length);
    for (var k = 0; k < keys_1.length; k++) {
      keys_1[k] = "" + k;
    }
    return keys_1;
  }
  if (Object.keys) {
    return Object.keys(obj);
  }
  var keys = [];
  for (var i2 in obj) {
    if (hasOwnProperty(obj, i2)) {
      keys.push(i2);
    }
  }
  return keys;
}
function _deepClone(obj) {
  switch (typeof obj) {
    case "object":
      return JSON.parse(JSON.stringify(obj));
    //Faster than ES5 clone - http://jsperf.com/deep-cloning-of-objects/5
    case "undefined":
      return null;
    //this is how JSON.stringify behaves for array items
    default:
      return obj;
  }
}
function isInteger(str) {
  var i2 = 0;
  var len = str.length;
  var charCode;
  while (i2 < len) {
    charCode = str.charCodeAt(i2);
    if (charCode >= 48 && charCode <= 57) {
      i2++;
      continue;
    }
    return false;
  }
  return true;
}
function unescapePathComponent(path) {
  return path.replace(/~1/g, "/").replace(/~0/g, "~");
}
function hasUndefined(obj) {
  if (obj === void 0) {
    return true;
  }
  if (obj) {
    if (Array.isArray(obj)) {
      for (var i_1 = 0, len = obj.length; i_1 < len; i_1++) {
        if (hasUndefined(obj[i_1])) {
          return true;
        }
      }
    } else if (typeof obj === "object") {
      var objKeys = _objectKeys(obj);
      var objKeysLength = objKeys.length;
      for (var i2 = 0; i2 < objKeysLength; i2++) {
        if (hasUndefined(obj[objKeys[i2]])) {
          return true;
        }
      }
    }
  }
  return false;
}
function patchErrorMessageFormatter(message, args) {
  var messageParts = [message];
  for (var key in args) {
    var value = typeof args[key] === "object" ? JSON.stringify(args[key], null, 2) : args[key];
    if (typeof value !== "undefined") {
      messageParts.push(key + ": " + value);
    }
  }
  return messageParts.join("\n");
}
var PatchError = (
  /** @class */
  (function(_super) {
    __extends(PatchError2, _super);
    function PatchError2(message, name, index, operation, tree) {
      var _newTarget = this.constructor;
      var _this = _super.call(this, patchErrorMessageFormatter(message, { name, index, operation, tree })) || this;
      _this.name = name;
      _this.index = index;
      _this.operation = operation;
      _this.tree = tree;
      Object.setPrototypeOf(_this, _newTarget.prototype);
      _this.message = patchErrorMessageFormatter(message, { name, index, operation, tree });
      return _this;
    }
    return PatchError2;
  })(Error)
);

// node_modules/fast-json-patch/module/core.mjs
var JsonPatchError = PatchError;
var objOps = {
  add: function(obj, key, document) {
    obj[key] = this.value;
    return { newDocument: document };
  },
  remove: function(obj, key, document) {
    var removed = obj[key];
    delete obj[key];
    return { newDocument: document, removed };
  },
  replace: function(obj, key, document) {
    var removed = obj[key];
    obj[key] = this.value;
    return { newDocument: document, removed };
  },
  move: function(obj, key, document) {
    var removed = getValueByPointer(document, this.path);
    if (removed) {
      removed = _deepClone(removed);
    }
    var originalValue = applyOperation(document, { op: "remove", path: this.from }).removed;
    applyOperation(document, { op: "add", path: this.path, value: originalValue });
    return { newDocument: document, removed };
  },
  copy: function(obj, key, document) {
    var valueToCopy = getValueByPointer(document, this.from);
    applyOperation(document, { op: "add", path: this.path, value: _deepClone(valueToCopy) });
    return { newDocument: document };
  },
  test: function(obj, key, document) {
    return { newDocument: document, test: _areEquals(obj[key], this.value) };
  },
  _get: function(obj, key, document) {
    this.value = obj[key];
    return { newDocument: document };
  }
};
var arrOps = {
  add: function(arr, i2, document) {
    if (isInteger(i2)) {
      arr.splice(i2, 0, this.value);
    } else {
      arr[i2] = this.value;
    }
    return { newDocument: document, index: i2 };
  },
  remove: function(arr, i2, document) {
    var removedList = arr.splice(i2, 1);
    return { newDocument: document, removed: removedList[0] };
  },
  replace: function(arr, i2, document) {
    var removed = arr[i2];
    arr[i2] = this.value;
    return { newDocument: document, removed };
  },
  move: objOps.move,
  copy: objOps.copy,
  test: objOps.test,
  _get: objOps._get
};
function getValueByPointer(document, pointer) {
  if (pointer == "") {
    return document;
  }
  var getOriginalDestination = { op: "_get", path: pointer };
  applyOperation(document, getOriginalDestination);
  return getOriginalDestination.value;
}
function applyOperation(document, operation, validateOperation, mutateDocument, banPrototypeModifications, index) {
  if (validateOperation === void 0) {
    validateOperation = false;
  }
  if (mutateDocument === void 0) {
    mutateDocument = true;
  }
  if (banPrototypeModifications === void 0) {
    banPrototypeModifications = true;
  }
  if (index === void 0) {
    index = 0;
  }
  if (validateOperation) {
    if (typeof validateOperation == "function") {
      validateOperation(operation, 0, document, operation.path);
    } else {
      validator(operation, 0);
    }
  }
  if (operation.path === "") {
    var returnValue = { newDocument: document };
    if (operation.op === "add") {
      returnValue.newDocument = operation.value;
      return returnValue;
    } else if (operation.op === "replace") {
      returnValue.newDocument = operation.value;
      returnValue.removed = document;
      return returnValue;
    } else if (operation.op === "move" || operation.op === "copy") {
      returnValue.newDocument = getValueByPointer(document, operation.from);
      if (operation.op === "move") {
        returnValue.removed = document;
      }
      return returnValue;
    } else if (operation.op === "test") {
      returnValue.test = _areEquals(document, operation.value);
      if (returnValue.test === false) {
        throw new JsonPatchError("Test operation failed", "TEST_OPERATION_FAILED", index, operation, document);
      }
      returnValue.newDocument = document;
      return returnValue;
    } else if (operation.op === "remove") {
      returnValue.removed = document;
      returnValue.newDocument = null;
      return returnValue;
    } else if (operation.op === "_get") {
      operation.value = document;
      return returnValue;
    } else {
      if (validateOperation) {
        throw new JsonPatchError("Operation `op` property is not one of operations defined in RFC-6902", "OPERATION_OP_INVALID", index, operation, document);
      } else {
        return returnValue;
      }
    }
  } else {
    if (!mutateDocument) {
      document = _deepClone(document);
    }
    var path = operation.path || "";
    var keys = path.split("/");
    var obj = document;
    var t = 1;
    var len = keys.length;
    var existingPathFragment = void 0;
    var key = void 0;
    var validateFunction = void 0;
    if (typeof validateOperation == "function") {
      validateFunction = validateOperation;
    } else {
      validateFunction = validator;
    }
    while (true) {
      key = keys[t];
      if (key && key.indexOf("~") != -1) {
        key = unescapePathComponent(key);
      }
      if (banPrototypeModifications && (key == "__proto__" || key == "prototype" && t > 0 && keys[t - 1] == "constructor")) {
        throw new TypeError("JSON-Patch: modifying `__proto__` or `constructor/prototype` prop is banned for security reasons, if this was on purpose, please set `banPrototypeModifications` flag false and pass it to this function. More info in fast-json-patch README");
      }
      if (validateOperation) {
        if (existingPathFragment === void 0) {
          if (obj[key] === void 0) {
            existingPathFragment = keys.slice(0, t).join("/");
          } else if (t == len - 1) {
            existingPathFragment = operation.path;
          }
          if (existingPathFragment !== void 0) {
            validateFunction(operation, 0, document, existingPathFragment);
          }
        }
      }
      t++;
      if (Array.isArray(obj)) {
        if (key === "-") {
          key = obj.length;
        } else {
          if (validateOperation && !isInteger(key)) {
            throw new JsonPatchError("Expected an unsigned base-10 integer value, making the new referenced value the array element with the zero-based index", "OPERATION_PATH_ILLEGAL_ARRAY_INDEX", index, operation, document);
          } else if (isInteger(key)) {
            key = ~~key;
          }
        }
        if (t >= len) {
          if (validateOperation && operation.op === "add" && key > obj.length) {
            throw new JsonPatchError("The specified index MUST NOT be greater than the number of elements in the array", "OPERATION_VALUE_OUT_OF_BOUNDS", index, operation, document);
          }
          var returnValue = arrOps[operation.op].call(operation, obj, key, document);
          if (returnValue.test === false) {
            throw new JsonPatchError("Test operation failed", "TEST_OPERATION_FAILED", index, operation, document);
          }
          return returnValue;
        }
      } else {
        if (t >= len) {
          var returnValue = objOps[operation.op].call(operation, obj, key, document);
          if (returnValue.test === false) {
            throw new JsonPatchError("Test operation failed", "TEST_OPERATION_FAILED", index, operation, document);
          }
          return returnValue;
        }
      }
      obj = obj[key];
      if (validateOperation && t < len && (!obj || typeof obj !== "object")) {
        throw new JsonPatchError("Cannot perform operation at the desired path", "OPERATION_PATH_UNRESOLVABLE", index, operation, document);
      }
    }
  }
}
function applyPatch(document, patch, validateOperation, mutateDocument, banPrototypeModifications) {
  if (mutateDocument === void 0) {
    mutateDocument = true;
  }
  if (banPrototypeModifications === void 0) {
    banPrototypeModifications = true;
  }
  if (validateOperation) {
    if (!Array.isArray(patch)) {
      throw new JsonPatchError("Patch sequence must be an array", "SEQUENCE_NOT_AN_ARRAY");
    }
  }
  if (!mutateDocument) {
    document = _deepClone(document);
  }
  var results = new Array(patch.length);
  for (var i2 = 0, length_1 = patch.length; i2 < length_1; i2++) {
    results[i2] = applyOperation(document, patch[i2], validateOperation, true, banPrototypeModifications, i2);
    document = results[i2].newDocument;
  }
  results.newDocument = document;
  return results;
}
function validator(operation, index, document, existingPathFragment) {
  if (typeof operation !== "object" || operation === null || Array.isArray(operation)) {
    throw new JsonPatchError("Operation is not an object", "OPERATION_NOT_AN_OBJECT", index, operation, document);
  } else if (!objOps[operation.op]) {
    throw new JsonPatchError("Operation `op` property is not one of operations defined in RFC-6902", "OPERATION_OP_INVALID", index, operation, document);
  } else if (typeof operation.path !== "string") {
    throw new JsonPatchError("Operation `path` property is not a string", "OPERATION_PATH_INVALID", index, operation, document);
  } else if (operation.path.indexOf("/") !== 0 && operation.path.length > 0) {
    throw new JsonPatchError('Operation `path` property must start with "/"', "OPERATION_PATH_INVALID", index, operation, document);
  } else if ((operation.op === "move" || operation.op === "copy") && typeof operation.from !== "string") {
    throw new JsonPatchError("Operation `from` property is not present (applicable in `move` and `copy` operations)", "OPERATION_FROM_REQUIRED", index, operation, document);
  } else if ((operation.op === "add" || operation.op === "replace" || operation.op === "test") && operation.value === void 0) {
    throw new JsonPatchError("Operation `value` property is not present (applicable in `add`, `replace` and `test` operations)", "OPERATION_VALUE_REQUIRED", index, operation, document);
  } else if ((operation.op === "add" || operation.op === "replace" || operation.op === "test") && hasUndefined(operation.value)) {
    throw new JsonPatchError("Operation `value` property is not present (applicable in `add`, `replace` and `test` operations)", "OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED", index, operation, document);
  } else if (document) {
    if (operation.op == "add") {
      var pathLen = operation.path.split("/").length;
      var existingPathLen = existingPathFragment.split("/").length;
      if (pathLen !== existingPathLen + 1 && pathLen !== existingPathLen) {
        throw new JsonPatchError("Cannot perform an `add` operation at the desired path", "OPERATION_PATH_CANNOT_ADD", index, operation, document);
      }
    } else if (operation.op === "replace" || operation.op === "remove" || operation.op === "_get") {
      if (operation.path !== existingPathFragment) {
        throw new JsonPatchError("Cannot perform the operation at a path that does not exist", "OPERATION_PATH_UNRESOLVABLE", index, operation, document);
      }
    } else if (operation.op === "move" || operation.op === "copy") {
      var existingValue = { op: "_get", path: operation.from, value: void 0 };
      var error = validate([existingValue], document);
      if (error && error.name === "OPERATION_PATH_UNRESOLVABLE") {
        throw new JsonPatchError("Cannot perform the operation from a path that does not exist", "OPERATION_FROM_UNRESOLVABLE", index, operation, document);
      }
    }
  }
}
function validate(sequence, document, externalValidator) {
  try {
    if (!Array.isArray(sequence)) {
      throw new JsonPatchError("Patch sequence must be an array", "SEQUENCE_NOT_AN_ARRAY");
    }
    if (document) {
      applyPatch(_deepClone(document), _deepClone(sequence), externalValidator || true);
    } else {
      externalValidator = externalValidator || validator;
      for (var i2 = 0; i2 < sequence.length; i2++) {
        externalValidator(sequence[i2], i2, document, void 0);
      }
    }
  } catch (e) {
    if (e instanceof JsonPatchError) {
      return e;
    } else {
      throw e;
    }
  }
}
function _areEquals(a, b) {
  if (a === b)
    return true;
  if (a && b && typeof a == "object" && typeof b == "object") {
    var arrA = Array.isArray(a), arrB = Array.isArray(b), i2, length, key;
    if (arrA && arrB) {
      length = a.length;
      if (length != b.length)
        return false;
      for (i2 = length; i2-- !== 0; )
        if (!_areEquals(a[i2], b[i2]))
          return false;
      return true;
    }
    if (arrA != arrB)
      return false;
    var keys = Object.keys(a);
    length = keys.length;
    if (length !== Object.keys(b).length)
      return false;
    for (i2 = length; i2-- !== 0; )
      if (!b.hasOwnProperty(keys[i2]))
        return false;
    for (i2 = length; i2-- !== 0; ) {
      key = keys[i2];
      if (!_areEquals(a[key], b[key]))
        return false;
    }
    return true;
  }
  return a !== a && b !== b;
}

// src/state.ts
var allowedOps = /* @__PURE__ */ new Set(["add", "remove", "replace", "move", "copy", "test"]);
var forbiddenSegments = /* @__PURE__ */ new Set(["__proto__", "constructor", "prototype"]);
var indexPath = /^\/\d+(\/|$)/;
function forbidden(path) {
  return typeof path === "string" && path.split("/").some((s) => forbiddenSegments.has(s));
}
function applyPatches(base, patches) {
  if (!Array.isArray(patches)) throw new Error("patches is not an array");
  if (patches.length === 0) return base;
  for (const p of patches) {
    if (typeof p !== "object" || p === null || !allowedOps.has(p.op)) throw new Error("bad op");
    if (typeof p.path !== "string") throw new Error("bad path");
    if (forbidden(p.path) || forbidden(p.from)) throw new Error("forbidden path");
  }
  let start = base;
  if (start === void 0 || start === null) {
    const first = patches[0];
    const arrayRoot = first.op === "replace" && first.path === "" && Array.isArray(first.value);
    start = arrayRoot || indexPath.test(first.path) ? [] : {};
  }
  const copy = JSON.parse(JSON.stringify(start));
  return applyPatch(copy, patches, false, true, true).newDocument;
}
var StateStore = class {
  constructor() {
    this.value = void 0;
    /** version is the last version seen for the key, or undefined when the server sends none. */
    this.version = void 0;
    /** stale is set after a gap or failed patch, until the next snapshot arrives. */
    this.stale = false;
    this.subscribers = /* @__PURE__ */ new Set();
  }
  /** snapshot replaces the value; the server is authoritative, whatever the version. */
  snapshot(data, version) {
    this.value = data;
    this.version = typeof version === "number" ? version : void 0;
    this.stale = false;
    this.notify();
  }
  /**
   * patch applies a STATE_PATCH and reports whether a resync is needed. A versioned patch must
   * apply to the last version exactly: to `base` when the server sends it (a batched flush
   * carries several versions at once), else to version - 1; older ones are duplicates and ignored.
   */
  patch(patches, version, base) {
    const versioned = typeof version === "number";
    if (versioned && this.version !== void 0) {
      if (version <= this.version) return "ignored";
      const from = typeof base === "number" ? base : version - 1;
      if (this.stale || from !== this.version) {
        this.stale = true;
        return "resync";
      }
    }
    try {
      this.value = applyPatches(this.value, patches);
    } catch {
      if (!versioned) return "ignored";
      this.stale = true;
      return "resync";
    }
    this.version = versioned ? version : void 0;
    this.notify();
    return "ok";
  }
  notify() {
    deliver(this.subscribers, this.value);
  }
};

// src/client.ts
var resyncMethod = "$ds.resync";
var recoverMethod = "$ds.recover";
var maxRecoverStreams = 64;
var methodNotFound = -32601;
var maxEventName = 256;
var maxQueuedCrdtOps = 1e3;
var probeTimeout = 5e3;
var DatasoleClient = class {
  constructor(options) {
    // plainV1 is set once a server failed the upgrade that offered subprotocols but would admit
    // the page: browsers fail a handshake whose response selects none of the offered
    // subprotocols, which is what a v1 server that knows none of them answers.
    this.plainV1 = false;
    this.state = "disconnected";
    this.link = null;
    this.connecting = null;
    this.abortConnect = null;
    this.userClosed = true;
    this.workerFailed = false;
    this.attempts = 0;
    this.nextId = 1;
    this.pending = /* @__PURE__ */ new Map();
    this.handlers = /* @__PURE__ */ new Map();
    this.stores = /* @__PURE__ */ new Map();
    this.stateListeners = /* @__PURE__ */ new Set();
    this.errorListeners = /* @__PURE__ */ new Set();
    this.crdts = null;
    this.crdtQueue = [];
    this.resyncWanted = /* @__PURE__ */ new Set();
    this.resyncInFlight = false;
    this.resyncUnsupported = false;
    // Positions live here, on the page thread, for the client's life: a worker is one link's
    // transport and is replaced on every reconnect, so it never holds them.
    this.history = new Streams();
    this.recoverListeners = /* @__PURE__ */ new Set();
    this.recoverCalls = 0;
    if (!options || typeof options.url !== "string") throw new TypeError("datasole: options.url is required");
    const path = options.path ?? "/__ds";
    const token = options.auth?.token || void 0;
    this.tokenInProtocol = token !== void 0 && options.auth?.sendAs === "subprotocol";
    this.protocols = [subprotocolV1, subprotocolBatch];
    if (this.tokenInProtocol) this.protocols.push(tokenProtocol(token));
    this.opts = {
      url: options.url,
      path,
      token: this.tokenInProtocol ? void 0 : token,
      useWorker: options.useWorker ?? typeof Worker !== "undefined",
      workerUrl: options.workerUrl ?? `${path.replace(/\/$/, "")}/datasole-worker.iife.min.js`,
      workerTimeout: options.workerTimeout ?? 1e4,
      reconnect: options.reconnect ?? true,
      reconnectInterval: options.reconnectInterval ?? 1e3,
      maxReconnectAttempts: options.maxReconnectAttempts ?? 10,
      rpcTimeout: options.rpcTimeout ?? 3e4,
      pingInterval: options.pingInterval ?? 25e3,
      pingTimeout: options.pingTimeout ?? 1e4,
      probe: options.probe ?? true
    };
  }
  /**
   * connect opens the connection and resolves once it is open. While connected or connecting
   * it returns the same outcome again. If the first attempt fails the promise rejects and, with
   * reconnect on, the retry schedule keeps going as in v1.
   */
  connect() {
    this.userClosed = false;
    if (this.state === "connected") return Promise.resolve();
    if (this.connecting) return this.connecting;
    clearTimeout(this.retryTimer);
    return this.open();
  }
  /** disconnect closes the connection for good: no reconnect follows until connect is called. */
  async disconnect() {
    this.userClosed = true;
    clearTimeout(this.retryTimer);
    this.drop(1e3, "client disconnect");
    this.attempts = 0;
    this.setState("disconnected", { code: 1e3 });
  }
  /** getConnectionState returns the current connection state. */
  getConnectionState() {
    return this.state;
  }
  /** onConnectionState calls handler now and on every connection state change. */
  onConnectionState(handler) {
    this.stateListeners.add(handler);
    handler(this.state, {});
    return unsubscriber(() => this.stateListeners.delete(handler));
  }
  /** onError receives server ERROR frames that do not belong to a pending call (e.g. a rate-limited emit). */
  onError(handler) {
    this.errorListeners.add(handler);
    return unsubscriber(() => this.errorListeners.delete(handler));
  }
  rpc(method, params, options) {
    return this.call(method, params, options);
  }
  call(method, params, options) {
    if (this.state !== "connected" || !this.link) return Promise.reject(new DatasoleError("Not connected", { code: "not-connected" }));
    const id = this.nextId;
    this.nextId = this.nextId >= 4294967295 ? 1 : this.nextId + 1;
    const frame = encodeFrame(1 /* RpcReq */, id, { method, params: params === void 0 ? null : params, correlationId: id });
    const timeout = options?.timeout ?? this.opts.rpcTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DatasoleError(`RPC timeout: ${method} (${timeout}ms)`, { code: "timeout" }));
      }, timeout);
      this.pending.set(id, { method, resolve, reject, timer });
      this.link.send(frame);
    });
  }
  on(event, handler) {
    return this.addHandler(event, handler);
  }
  addHandler(event, handler) {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, set = /* @__PURE__ */ new Set());
    set.add(handler);
    return unsubscriber(() => this.removeHandler(event, handler));
  }
  off(event, handler) {
    this.removeHandler(event, handler);
  }
  removeHandler(event, handler) {
    const set = this.handlers.get(event);
    set?.delete(handler);
    if (set?.size === 0) this.handlers.delete(event);
  }
  emit(event, data) {
    if (typeof event !== "string" || event.length === 0 || event.length > maxEventName) {
      throw new TypeError(`datasole: event name must be 1–${maxEventName} characters`);
    }
    if (this.state !== "connected" || !this.link) throw new DatasoleError("Not connected", { code: "not-connected" });
    this.link.send(encodeFrame(3 /* EventC2S */, 0, data === void 0 ? { event } : { event, data }));
  }
  /**
   * onRecover calls handler after every recovery of a history stream (after a reconnect, or
   * when an offset gap showed events were missed) with whether every missed event was
   * delivered. recovered false means events were lost for good: reload what the stream feeds.
   */
  onRecover(handler) {
    this.recoverListeners.add(handler);
    return unsubscriber(() => this.recoverListeners.delete(handler));
  }
  async presence(tag, options) {
    const entries = parseEntries(await this.call(presenceMethod, { tag }, options));
    if (!entries) throw new DatasoleError(`Invalid RPC response: ${presenceMethod}`, { code: "bad-response" });
    return entries;
  }
  /** presenceStats counts the connections and distinct users in a tracked tag without listing them (for big rooms). */
  async presenceStats(tag, options) {
    const stats = parseStats(await this.call(presenceStatsMethod, { tag }, options));
    if (!stats) throw new DatasoleError(`Invalid RPC response: ${presenceStatsMethod}`, { code: "bad-response" });
    return stats;
  }
  onJoin(tag, handler) {
    return this.onPresence(joinEvent, tag, handler);
  }
  onLeave(tag, handler) {
    return this.onPresence(leaveEvent, tag, handler);
  }
  onPresence(event, tag, handler) {
    return this.addHandler(event, (e) => {
      const c = parseChange(e.data);
      if (c && c.tag === tag) handler(c);
    });
  }
  subscribeState(key, handler) {
    const store = this.store(key);
    const fn = handler;
    store.subscribers.add(fn);
    fn(store.value);
    return unsubscriber(() => store.subscribers.delete(fn));
  }
  getState(key) {
    return this.stores.get(key)?.value;
  }
  /**
   * registerCrdt returns the client's CRDT store, creating it with nodeId (default: random) on
   * first use. Replicas registered on it send CRDT_OP frames and merge CRDT_STATE frames.
   */
  registerCrdt(nodeId) {
    if (!this.crdts) {
      this.crdts = new CrdtStore(nodeId ?? randomNodeId(), (key, op) => this.sendCrdt(key, op));
    }
    return this.crdts;
  }
  store(key) {
    let s = this.stores.get(key);
    if (!s) this.stores.set(key, s = new StateStore());
    return s;
  }
  setState(state, info) {
    if (state === this.state && state !== "reconnecting") return;
    this.state = state;
    for (const fn of [...this.stateListeners]) {
      try {
        fn(state, info);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  open() {
    this.drop(1e3, "reconnect");
    this.setState("connecting", { attempt: this.attempts });
    const base = this.opts.url.replace(/^http/, "ws").replace(/\/$/, "");
    const url = `${base}${this.opts.path}${this.opts.token ? `?${new URLSearchParams({ token: this.opts.token })}` : ""}`;
    const p = new Promise((resolve, reject) => {
      let opened = false;
      this.abortConnect = reject;
      const events = {
        open: () => {
          if (this.link !== link) return;
          opened = true;
          this.connecting = null;
          this.abortConnect = null;
          this.attempts = 0;
          this.setState("connected", {});
          this.startKeepalive();
          for (const f of this.crdtQueue.splice(0)) link.send(f);
          if (this.history.size > 0) this.recover(null);
          resolve();
        },
        frame: (f) => {
          if (this.link === link) this.route(f);
        },
        close: (code, reason, error) => {
          if (this.link !== link) return;
          this.link = null;
          this.stopKeepalive();
          this.failPending("Connection closed");
          if (error instanceof WorkerUnavailable) {
            this.workerFailed = true;
            this.connecting = null;
            this.abortConnect = null;
            this.open().then(resolve, reject);
            return;
          }
          if (opened) {
            this.connecting = null;
            this.abortConnect = null;
            this.afterClose(code, reason, closeError(code, reason));
            return;
          }
          void this.explain(url, code).then((err2) => {
            if (this.connecting !== p) return;
            this.connecting = null;
            this.abortConnect = null;
            if (offered.length > 0 && !this.plainV1 && !this.tokenInProtocol && (err2.code === "upgrade-failed" || err2.code === "connection-failed")) {
              this.plainV1 = true;
              this.open().then(resolve, reject);
              return;
            }
            reject(err2);
            this.afterClose(code, reason, err2);
          });
        }
      };
      const offered = this.plainV1 ? [] : this.protocols;
      let link;
      try {
        link = this.opts.useWorker && !this.workerFailed ? openWorker(this.opts.workerUrl, url, offered, this.opts.workerTimeout, events) : openDirect(url, offered, events);
      } catch (e) {
        this.connecting = null;
        this.abortConnect = null;
        this.setState("disconnected", {});
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      this.link = link;
    });
    this.connecting = p;
    return p;
  }
  // drop abandons the current link (if any) without triggering a reconnect.
  drop(code, reason) {
    const link = this.link;
    this.link = null;
    this.connecting = null;
    this.stopKeepalive();
    this.failPending("Connection closed");
    this.abortConnect?.(new DatasoleError("Connection closed", { code }));
    this.abortConnect = null;
    link?.close(code, reason);
  }
  // explain says why an upgrade failed: by asking the server (see probe.ts) unless probing
  // is off, else only by its close code.
  async explain(url, code) {
    const generic = new DatasoleError(`Connection failed (${code})`, { code: "connection-failed", closeCode: code });
    if (!this.opts.probe || code !== 1006) return generic;
    try {
      return await probe({
        wsUrl: url,
        path: this.opts.path,
        token: this.opts.token !== void 0 || this.tokenInProtocol,
        protocols: this.tokenInProtocol ? this.protocols : void 0,
        timeout: probeTimeout
      });
    } catch {
      return generic;
    }
  }
  afterClose(code, reason, error) {
    if (this.userClosed || !this.opts.reconnect) {
      this.setState("disconnected", { code, reason, error });
      return;
    }
    if (this.attempts >= this.opts.maxReconnectAttempts) {
      this.setState("disconnected", { code, reason, gaveUp: true, error });
      return;
    }
    this.attempts++;
    const b = this.opts.reconnectInterval;
    const delay = b * Math.min(2 ** this.attempts, 64) + Math.random() * b;
    this.setState("reconnecting", { attempt: this.attempts, delay, code, reason, error });
    this.retryTimer = setTimeout(() => {
      this.open().catch(() => {
      });
    }, delay);
  }
  failPending(message) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new DatasoleError(message, { code: "closed" }));
    }
  }
  startKeepalive() {
    const { pingInterval, pingTimeout } = this.opts;
    if (!(pingInterval > 0)) return;
    this.pingTimer = setInterval(() => {
      if (this.pongTimer !== void 0 || !this.link) return;
      this.link.send(encodeFrame(7 /* Ping */, 0, null));
      this.pongTimer = setTimeout(() => {
        this.pongTimer = void 0;
        const link = this.link;
        if (!link) return;
        link.close(4e3, "ping timeout");
      }, pingTimeout);
    }, pingInterval);
  }
  stopKeepalive() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = void 0;
  }
  sendCrdt(key, op) {
    const frame = encodeFrame(10 /* CrdtOp */, 0, { key, op });
    if (this.state === "connected" && this.link) this.link.send(frame);
    else if (this.crdtQueue.length < maxQueuedCrdtOps) this.crdtQueue.push(frame);
  }
  route(f) {
    clearTimeout(this.pongTimer);
    this.pongTimer = void 0;
    if (f.opcode === 8 /* Pong */) return;
    const body = parsePayload(f.payload);
    switch (f.opcode) {
      case 2 /* RpcRes */:
        return this.settle(f.correlationId, body);
      case 9 /* Error */:
        return this.serverError(f.correlationId, body);
    }
    if (typeof body !== "object" || body === null) return;
    switch (f.opcode) {
      case 4 /* EventS2C */: {
        if (typeof body.event !== "string") return;
        const ev = body;
        const pos = parsePos(body.pos);
        if (!pos) return this.dispatch(ev);
        const { deliver: now, recover } = this.history.arrive({ body: ev, pos });
        for (const e of now) this.dispatch(e.body);
        if (recover) this.recover([pos.s]);
        return;
      }
      case 5 /* StatePatch */:
        if (typeof body.key !== "string") return;
        if (this.store(body.key).patch(body.patches, body.version, body.base) === "resync") this.requestResync(body.key);
        return;
      case 6 /* StateSnapshot */:
        if (typeof body.key !== "string") return;
        this.resyncWanted.delete(body.key);
        this.store(body.key).snapshot(body.data, body.version);
        return;
      case 11 /* CrdtState */:
        if (typeof body.key === "string" && typeof body.state === "object" && body.state !== null) {
          this.crdts?.merge(body.key, body.state);
        }
        return;
    }
  }
  dispatch(body) {
    const set = this.handlers.get(body.event);
    if (!set) return;
    const ts = typeof body.timestamp === "number" ? body.timestamp : void 0;
    deliver(set, { event: body.event, data: body.data, timestamp: Date.now(), serverTimestamp: ts });
  }
  // recover asks the server for the events the named streams (null: every stream seen)
  // missed; it replays them, in order and with their positions, before it answers.
  recover(names) {
    const token = ++this.recoverCalls;
    const all = [...this.history.positions(names, token)];
    for (let i2 = 0; i2 < all.length; i2 += maxRecoverStreams) {
      const part = all.slice(i2, i2 + maxRecoverStreams);
      const chunk = part.map(([name]) => name);
      this.call(recoverMethod, { streams: Object.fromEntries(part) }).then(
        (res) => this.recovered(chunk, res, token),
        // A lost connection or an unavailable backend: the next reconnect or gap asks again.
        () => this.history.abort(chunk, token)
      );
    }
  }
  recovered(names, res, token) {
    const answers = res?.streams;
    const again = [];
    for (const name of names) {
      const own = typeof answers === "object" && answers !== null && Object.prototype.hasOwnProperty.call(answers, name);
      const a = parseAnswer(own ? answers[name] : void 0);
      if (!a) {
        this.history.abort([name], token);
        continue;
      }
      const s = this.history.settle(name, a, token);
      for (const e of s.deliver) this.dispatch(e.body);
      if (s.again) again.push(name);
      if (s.report !== void 0) {
        const report = [name, s.report];
        deliver([...this.recoverListeners].map((fn) => (r) => fn(...r)), report);
      }
    }
    if (again.length > 0) this.recover(again);
  }
  settle(id, body) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      p.reject(new DatasoleError(`Invalid RPC response: ${p.method}`, { code: "bad-response" }));
      return;
    }
    const err2 = body.error;
    if (!err2) {
      p.resolve(body.result);
      return;
    }
    const message = typeof err2 === "object" && typeof err2.message === "string" ? err2.message : "RPC failed";
    const code = typeof err2 === "object" && typeof err2.code === "number" ? err2.code : void 0;
    p.reject(new DatasoleError(message, { code, data: typeof err2 === "object" ? err2.data : void 0 }));
  }
  serverError(id, body) {
    const b = typeof body === "object" && body !== null ? body : {};
    const e = new DatasoleError(typeof b.message === "string" ? b.message : "Server error", {
      code: typeof b.code === "number" || typeof b.code === "string" ? b.code : "server-error",
      retryAfter: typeof b.retryAfter === "number" ? b.retryAfter : void 0
    });
    const p = id !== 0 ? this.pending.get(id) : void 0;
    if (p) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(e);
      return;
    }
    deliver(this.errorListeners, e);
  }
  // requestResync asks a versioning server for fresh snapshots of keys whose patches could not
  // be applied in order. Requests are batched per task and at most one is in flight.
  requestResync(key) {
    if (this.resyncUnsupported) return;
    this.resyncWanted.add(key);
    if (this.resyncInFlight) return;
    this.resyncInFlight = true;
    queueMicrotask(() => {
      const keys = [...this.resyncWanted];
      if (keys.length === 0 || this.state !== "connected") {
        this.resyncInFlight = false;
        return;
      }
      this.call(resyncMethod, { keys }).catch((e) => {
        if (e instanceof DatasoleError && e.code === methodNotFound) this.resyncUnsupported = true;
      }).finally(() => {
        this.resyncInFlight = false;
        for (const k of keys) this.resyncWanted.delete(k);
      });
    });
  }
};
function randomNodeId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
export {
  CrdtStore,
  DatasoleClient,
  DatasoleError,
  LWWMap,
  LWWRegister,
  PNCounter
};
/*! Bundled license information:

fast-json-patch/module/helpers.mjs:
  (*!
   * https://github.com/Starcounter-Jack/JSON-Patch
   * (c) 2017-2022 Joachim Wester
   * MIT licensed
   *)
*/
