/**
 * plane.test.ts again with the reactor's system calls made one by one through koffi
 * (FULCRUM_NATIVE_PUMP=off): the relay without the native pump (sys/native.ts) — where no C
 * compiler built it — must behave the same.
 */
process.env['FULCRUM_NATIVE_PUMP'] = 'off';
await import('./plane.test.js');
