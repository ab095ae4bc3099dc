// Karma settings of `ng test`: the unit tests run once in headless Chromium (Debian's
// `chromium`, named by CHROME_BIN; scripts/test sets it), no sandbox (CI runs as root).
module.exports = function (config) {
  config.set({
    basePath: '',
    frameworks: ['jasmine'],
    plugins: [require('karma-jasmine'), require('karma-chrome-launcher')],
    client: { jasmine: { random: true } },
    customLaunchers: {
      ChromiumHeadless: {
        base: 'ChromeHeadless',
        flags: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      },
    },
    reporters: ['progress'],
    browsers: ['ChromiumHeadless'],
    singleRun: true,
    restartOnFileChange: false,
  });
};
