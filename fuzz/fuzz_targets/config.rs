//! The config file parser: any text gives a config or an error naming a
//! line, never a panic; a config that parses survives a save/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match regentd::config::parse(text) {
        Ok(config) => {
            let again = toml::to_string_pretty(&config).expect("a parsed config serializes");
            let back = regentd::config::parse(&again).expect("a saved config parses");
            assert_eq!(back, config);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
