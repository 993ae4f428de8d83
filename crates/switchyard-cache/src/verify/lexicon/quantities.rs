//! Number words, Roman numerals, dates, durations and units.

pub(in crate::verify) fn number_word(w: &str) -> Option<u64> {
    Some(match w {
        "zero" | "none" => 0,
        "one" => 1,
        "two" | "twice" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" | "dozen" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        "hundred" => 100,
        // Ordinals count as their number: "first president" = "1st president".
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "thousand" => 1000,
        "million" => 1_000_000,
        "billion" => 1_000_000_000,
        _ => return None,
    })
}

/// Upper-case Roman numerals from II ("World War II", "Henry VIII"); "I" is the pronoun.
pub(in crate::verify) fn roman(w: &str) -> Option<u64> {
    Some(match w {
        "II" => 2,
        "III" => 3,
        "IV" => 4,
        "VI" => 6,
        "VII" => 7,
        "VIII" => 8,
        "IX" => 9,
        "XI" => 11,
        "XII" => 12,
        _ => return None,
    })
}

pub(in crate::verify) fn date_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "monday" | "mondays" => "monday",
        "tuesday" | "tuesdays" => "tuesday",
        "wednesday" | "wednesdays" => "wednesday",
        "thursday" | "thursdays" => "thursday",
        "friday" | "fridays" => "friday",
        "saturday" | "saturdays" => "saturday",
        "sunday" | "sundays" => "sunday",
        "weekend" | "weekends" => "weekend",
        "january" | "jan" => "january",
        "february" | "feb" => "february",
        "march" => "march",
        "april" | "apr" => "april",
        "june" | "jun" => "june",
        "july" | "jul" => "july",
        "august" | "aug" => "august",
        "september" | "sept" | "sep" => "september",
        "october" | "oct" => "october",
        "november" | "nov" => "november",
        "december" | "dec" => "december",
        "today" | "tonight" => "today",
        "tomorrow" => "tomorrow",
        "yesterday" => "yesterday",
        "spring" => "spring",
        "summer" => "summer",
        "autumn" => "autumn",
        "winter" => "winter",
        // German, French, Spanish weekdays: dates are language-independent facts.
        "montag" | "lundi" | "lunes" => "monday",
        "dienstag" | "mardi" | "martes" => "tuesday",
        "mittwoch" | "mercredi" | "miércoles" => "wednesday",
        "donnerstag" | "jeudi" | "jueves" => "thursday",
        "freitag" | "vendredi" | "viernes" => "friday",
        "samstag" | "samedi" | "sábado" => "saturday",
        "sonntag" | "dimanche" | "domingo" => "sunday",
        _ => return None,
    })
}

/// Durations that qualify a number: "6 months" is not "6 years".
pub(in crate::verify) const TIME_SPANS: &[&str] = &[
    "second", "minut", "hour", "day", "week", "month", "year", "night",
];

pub(in crate::verify) fn unit_of(suffix: &str) -> Option<&'static str> {
    unit_word(suffix).or(match suffix {
        "k" => Some("thousand"),
        "m" => Some("metre"),
        "h" | "hr" | "hrs" => Some("hour"),
        "s" | "sec" => Some("second"),
        "c" => Some("celsius"),
        "f" => Some("fahrenheit"),
        "x" => Some("times"),
        "p" => Some("pixels"),
        _ => None,
    })
}

pub(in crate::verify) fn unit_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "usd" | "dollar" | "dollars" | "bucks" => "usd",
        "eur" | "euro" | "euros" => "eur",
        "gbp" | "pound" | "pounds" | "quid" => "gbp",
        "jpy" | "yen" => "jpy",
        "chf" | "franc" | "francs" => "chf",
        "inr" | "rupee" | "rupees" => "inr",
        "percent" | "per-cent" | "pct" => "percent",
        "km" | "kms" | "kilometer" | "kilometers" | "kilometre" | "kilometres" => "km",
        "mile" | "miles" => "mile",
        "cm" | "centimeter" | "centimeters" | "centimetre" | "centimetres" => "cm",
        "mm" | "millimeter" | "millimeters" | "millimetre" | "millimetres" => "mm",
        "meter" | "meters" | "metre" | "metres" => "metre",
        "ft" | "foot" | "feet" => "foot",
        "inch" | "inches" => "inch",
        "kg" | "kgs" | "kilo" | "kilos" | "kilogram" | "kilograms" => "kg",
        "g" | "gram" | "grams" | "gramme" | "grammes" => "gram",
        "lb" | "lbs" => "lb",
        "oz" | "ounce" | "ounces" => "ounce",
        "ml" | "milliliter" | "milliliters" | "millilitre" | "millilitres" => "ml",
        "l" | "liter" | "liters" | "litre" | "litres" => "litre",
        "gb" | "gigabyte" | "gigabytes" => "gb",
        "mb" | "megabyte" | "megabytes" => "mb",
        "tb" | "terabyte" | "terabytes" => "tb",
        "celsius" | "centigrade" => "celsius",
        "fahrenheit" => "fahrenheit",
        "kelvin" => "kelvin",
        "degree" | "degrees" => "degree",
        "mph" => "mph",
        "kmh" | "kph" => "kmh",
        "calorie" | "calories" | "kcal" => "kcal",
        "watt" | "watts" | "w" => "watt",
        "kw" | "kwh" => "kwh",
        _ => return None,
    })
}
