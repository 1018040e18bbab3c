// A person signing in through Gatehouse, played by headless Chromium (Debian's
// package, driven by playwright-core): the client's authorization URL → the
// provider's sign-in form → Gatehouse's consent page → back at the client.
// Screenshots of each page go to $SHOTS. Prints {"callback": URL} on success.
//
// Env: START_URL, CALLBACK (prefix of the client's redirect URI), SHOTS,
// USERNAME, PASSWORD, CHROMIUM (default /usr/bin/chromium), PROFILE (fresh dir).
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

const context = await chromium.launchPersistentContext(env('PROFILE'), {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  ignoreHTTPSErrors: true, // Gatehouse's throw-away self-signed certificate
  viewport: { width: 900, height: 700 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30000);
  // The client application's redirect URI (a real loopback server showing what it
  // received).
  const callback = env('CALLBACK');

  await page.goto(env('START_URL'));
  await page.getByLabel('Username').waitFor();
  await page.screenshot({ path: `${env('SHOTS')}/1-sign-in.png`, fullPage: true });
  await page.getByLabel('Username').fill(env('USERNAME'));
  await page.getByLabel('Password').fill(env('PASSWORD'));
  await page.getByRole('button', { name: 'Sign in' }).click();

  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await page.screenshot({ path: `${env('SHOTS')}/2-consent.png`, fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForLoadState();
  if (!page.url().startsWith(callback)) {
    throw new Error(`after consent the browser is at ${page.url()}: ${await page.locator('body').innerText()}`);
  }

  await page.waitForURL((url) => url.href.startsWith(callback));
  await page.getByText(/code=/).first().waitFor();
  await page.screenshot({ path: `${env('SHOTS')}/3-result.png`, fullPage: true });
  console.log(JSON.stringify({ callback: page.url() }));
} finally {
  await context.close();
}
