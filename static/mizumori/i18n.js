/*
 * Text kept per language as data, shown in the page's language: the scripts' side of
 * config/i18n.py (`localized` / `pick`), by the same rule. UI strings are not here: they come from
 * the page's gettext catalog (/i18n/catalog/<language>.js, loaded before this file).
 *
 * A name field `name_<language>` (or a `{ja: …, en: …}` object, or a `[ja, en]` word pair of the
 * map vocabulary) in the language of <html lang>, else Japanese: the language every town writes in
 * and the one the level words are defined in.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var FALLBACK = "ja";

  // "zh-hans" → ["zh_hans", "zh", "ja"] (config.i18n.field_suffixes).
  function suffixes() {
    var code = (document.documentElement.lang || FALLBACK).toLowerCase().replace(/-/g, "_");
    var list = [code, code.split("_")[0], FALLBACK];
    return list.filter(function (item, index) { return list.indexOf(item) === index; });
  }

  Mizumori.language = function () {
    return document.documentElement.lang || FALLBACK;
  };

  // `source[field + "_" + language]`, else the Japanese one; "" when neither is set. Without a
  // field the key is the language itself ({ja: …, en: …}).
  Mizumori.localized = function (source, field) {
    if (!source || typeof source !== "object") {
      return "";
    }
    var found = "";
    suffixes().some(function (suffix) {
      var value = source[field ? field + "_" + suffix : suffix];
      if (value !== undefined && value !== null && value !== "") {
        found = String(value);
        return true;
      }
      return false;
    });
    return found;
  };

  // One word of a [ja, en] pair.
  Mizumori.pick = function (pair) {
    return Array.isArray(pair) ? Mizumori.localized({ text_ja: pair[0], text_en: pair[1] }, "text") : "";
  };
})(window, document);
