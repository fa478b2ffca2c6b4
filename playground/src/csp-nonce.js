// The page's Content-Security-Policy allows <style> elements only with the page's nonce.
// Monaco, Radix and framer-motion create <style> elements at run time without one, so every
// <style> element created through document.createElement gets the nonce the server put on
// <meta name="csp-nonce">. Imported first, before any library code runs.
const meta = document.querySelector('meta[name="csp-nonce"]');
const nonce = meta?.nonce || '';
if (nonce) {
  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function createElementWithNonce(tagName, options) {
    const element = createElement.call(this, tagName, options);
    if (typeof tagName === 'string' && tagName.toLowerCase() === 'style') {
      element.nonce = nonce;
    }
    return element;
  };
}
